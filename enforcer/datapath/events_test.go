package datapath

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

func encodeEvent(t testing.TB, e bpf.PalisadeEvent) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := binary.Write(&b, binary.NativeEndian, &e); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeEvent(t *testing.T) {
	v4 := bpf.PalisadeEvent{
		TimestampNs: 5e9, Ifindex: 7, SrcIdentity: 300, DstIdentity: 301, RuleId: 12,
		Saddr: addr16("10.0.0.2"), Daddr: addr16("10.0.0.3"), Sport: 40000, Dport: 8080,
		Protocol: 6, Family: 4, Direction: uint8(bpf.PalisadeDirectionDIR_INGRESS),
		Verdict: uint8(bpf.PalisadeEventVerdictEVENT_DROP), Reason: uint32(bpf.PalisadeReasonREASON_POLICY_MISS),
	}
	v6 := v4
	v6.Family, v6.Saddr, v6.Daddr = 6, addr16("fd00::2"), addr16("fd00::3")
	unparsed := v4
	unparsed.Family, unparsed.Protocol, unparsed.Reason = 0, 0, uint32(bpf.PalisadeReasonREASON_NON_IP)
	service := v4
	service.Direction, service.Flags = uint8(bpf.PalisadeDirectionDIR_EGRESS), uint32(bpf.PalisadeEventFlagsEVENT_F_SERVICE)
	service.ServiceAddr, service.ServicePort = addr16("10.96.0.10"), 80
	serviceLost := service
	serviceLost.ServiceAddr, serviceLost.ServicePort = [16]byte{}, 0

	cases := []struct {
		name string
		in   bpf.PalisadeEvent
		want Event
	}{
		{"ipv4 drop", v4, Event{Monotonic: 5 * time.Second, Ifindex: 7, Direction: policy.Ingress, Verdict: VerdictDrop, Reason: ReasonPolicyMiss,
			SrcIdentity: 300, DstIdentity: 301, RuleID: 12, Protocol: policy.ProtocolTCP,
			Src: netip.MustParseAddrPort("10.0.0.2:40000"), Dst: netip.MustParseAddrPort("10.0.0.3:8080")}},
		{"ipv6", v6, Event{Monotonic: 5 * time.Second, Ifindex: 7, Direction: policy.Ingress, Verdict: VerdictDrop, Reason: ReasonPolicyMiss,
			SrcIdentity: 300, DstIdentity: 301, RuleID: 12, Protocol: policy.ProtocolTCP,
			Src: netip.MustParseAddrPort("[fd00::2]:40000"), Dst: netip.MustParseAddrPort("[fd00::3]:8080")}},
		{"after DNAT", service, Event{Monotonic: 5 * time.Second, Ifindex: 7, Direction: policy.Egress, Verdict: VerdictDrop, Reason: ReasonPolicyMiss,
			SrcIdentity: 300, DstIdentity: 301, RuleID: 12, Protocol: policy.ProtocolTCP,
			Src: netip.MustParseAddrPort("10.0.0.2:40000"), Dst: netip.MustParseAddrPort("10.0.0.3:8080"),
			AfterDNAT: true, Service: netip.MustParseAddrPort("10.96.0.10:80")}},
		{"after DNAT, service unknown", serviceLost, Event{Monotonic: 5 * time.Second, Ifindex: 7, Direction: policy.Egress, Verdict: VerdictDrop, Reason: ReasonPolicyMiss,
			SrcIdentity: 300, DstIdentity: 301, RuleID: 12, Protocol: policy.ProtocolTCP,
			Src: netip.MustParseAddrPort("10.0.0.2:40000"), Dst: netip.MustParseAddrPort("10.0.0.3:8080"), AfterDNAT: true}},
		{"not parsed", unparsed, Event{Monotonic: 5 * time.Second, Ifindex: 7, Direction: policy.Ingress, Verdict: VerdictDrop, Reason: ReasonNonIP,
			SrcIdentity: 300, DstIdentity: 301, RuleID: 12}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeEvent(encodeEvent(t, c.in))
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("decoded\n %+v\nwant\n %+v", got, c.want)
			}
		})
	}
}

// Programs of the previous layout (72-byte events) may run until adopted
// links switch: their records decode without the service fields.
func TestDecodeLegacyEvent(t *testing.T) {
	e := bpf.PalisadeEvent{Ifindex: 3, Family: 4, Saddr: addr16("10.0.0.2"), Daddr: addr16("10.0.0.3"), Verdict: uint8(bpf.PalisadeEventVerdictEVENT_DROP)}
	raw := encodeEvent(t, e)[:legacyEventSize]
	got, err := DecodeEvent(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.Ifindex != 3 || got.Src.Addr() != netip.MustParseAddr("10.0.0.2") || got.AfterDNAT || got.Service.IsValid() {
		t.Errorf("decoded %+v", got)
	}
}

func TestDecodeEventRejects(t *testing.T) {
	bad := bpf.PalisadeEvent{Family: 9}
	for name, raw := range map[string][]byte{
		"short":                   make([]byte, eventSize-1),
		"shorter than any layout": make([]byte, legacyEventSize-1),
		"empty":                   nil,
		"unknown family":          encodeEvent(t, bad),
	} {
		if _, err := DecodeEvent(raw); err == nil || !strings.HasPrefix(err.Error(), "decode event: ") {
			t.Errorf("%s: error %v", name, err)
		}
	}
}

func TestVerdictAndReasonNames(t *testing.T) {
	if VerdictDrop.String() != "dropped" || VerdictAuditWouldDrop.String() != "audit" || VerdictAllowedNew.String() != "forwarded" {
		t.Error("verdict names drifted from the flow record vocabulary")
	}
	if got := Reason(99).String(); got != "reason(99)" {
		t.Errorf("unknown reason prints %q", got)
	}
	if ReasonRevoked.String() != "no longer allowed" {
		t.Errorf("revoked prints %q", ReasonRevoked)
	}
}

// FuzzDecodeEvent: any bytes decode or fail cleanly, and a decoded event
// keeps the kernel's numbers.
func FuzzDecodeEvent(f *testing.F) {
	f.Add(encodeEvent(f, bpf.PalisadeEvent{Family: 4, Protocol: 17, Sport: 53, Dport: 5353, Verdict: 1, Reason: 4}))
	f.Add(encodeEvent(f, bpf.PalisadeEvent{Family: 6, Protocol: 6, Verdict: 3, Reason: 1, RuleId: 7}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := DecodeEvent(raw)
		if err != nil {
			return
		}
		if ev.Ifindex != binary.NativeEndian.Uint32(raw[8:]) || ev.Verdict != Verdict(raw[63]) {
			t.Errorf("decoded %+v from %x", ev, raw[:eventSize])
		}
		if (raw[61] == 4) != ev.Src.Addr().Is4() {
			t.Errorf("family %d decoded as %v", raw[61], ev.Src)
		}
	})
}

func addr16(s string) [16]byte {
	a := netip.MustParseAddr(s)
	if a.Is4() {
		var b [16]byte
		v := a.As4()
		copy(b[:], v[:])
		return b
	}
	return a.As16()
}
