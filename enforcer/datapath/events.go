package datapath

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// Verdict is what the program did with the packet an Event reports.
type Verdict uint8

const (
	VerdictDrop           = Verdict(bpf.PalisadeEventVerdictEVENT_DROP)
	VerdictAuditWouldDrop = Verdict(bpf.PalisadeEventVerdictEVENT_AUDIT_WOULD_DROP)
	VerdictAllowedNew     = Verdict(bpf.PalisadeEventVerdictEVENT_ALLOWED_NEW)
)

func (v Verdict) String() string {
	switch v {
	case VerdictDrop:
		return "dropped"
	case VerdictAuditWouldDrop:
		return "audit"
	case VerdictAllowedNew:
		return "forwarded"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// Reason is why the program reached its verdict.
type Reason uint32

const (
	ReasonNone        = Reason(bpf.PalisadeReasonREASON_NONE)
	ReasonPolicyAllow = Reason(bpf.PalisadeReasonREASON_POLICY_ALLOW)
	ReasonNotIsolated = Reason(bpf.PalisadeReasonREASON_NOT_ISOLATED)
	ReasonHost        = Reason(bpf.PalisadeReasonREASON_HOST)
	ReasonPolicyMiss  = Reason(bpf.PalisadeReasonREASON_POLICY_MISS)
	ReasonMalformed   = Reason(bpf.PalisadeReasonREASON_MALFORMED)
	ReasonFragment    = Reason(bpf.PalisadeReasonREASON_FRAGMENT)
	ReasonRevoked     = Reason(bpf.PalisadeReasonREASON_REVOKED)
	ReasonNonIP       = Reason(bpf.PalisadeReasonREASON_NON_IP)
	ReasonTCPNotNew   = Reason(bpf.PalisadeReasonREASON_TCP_NOT_NEW)
	// ReasonServiceSourceUnknown: a packet deferred to the post-DNAT
	// judgement whose source is no local pod (the pod left, or it was
	// masqueraded and the kernel's conntrack could not tell): dropped.
	ReasonServiceSourceUnknown = Reason(bpf.PalisadeReasonREASON_SERVICE_SOURCE_UNKNOWN)
	// ReasonServiceUnconfirmed: a reply through a deferred flow that no
	// post-DNAT hook allowed (its backend was reached past every hook).
	ReasonServiceUnconfirmed = Reason(bpf.PalisadeReasonREASON_SERVICE_UNCONFIRMED)
	// ReasonSpoofedSource: a packet from a pod whose source address (or
	// ARP sender, or neighbour advertisement target) is not the pod's
	// own nor in its source ranges; dropped in every mode.
	ReasonSpoofedSource = Reason(bpf.PalisadeReasonREASON_SPOOFED_SOURCE)
	// ReasonRouterMessage: a router advertisement or redirect from a pod;
	// dropped in every mode.
	ReasonRouterMessage = Reason(bpf.PalisadeReasonREASON_ROUTER_MESSAGE)
	// ReasonConntrackEndpointLimit: a new flow that needs tracking (a
	// direction of its pod is isolated) while the share of the conntrack
	// table it counts in is used up (bpf.Config.ConntrackPerEndpoint):
	// the pod's own, or for a flow into it from another pod of the node,
	// the sender's.
	ReasonConntrackEndpointLimit = Reason(bpf.PalisadeReasonREASON_CT_ENDPOINT_LIMIT)
	// ReasonConntrackTableFull: a new flow that needs tracking while the
	// node's conntrack table is full.
	ReasonConntrackTableFull = Reason(bpf.PalisadeReasonREASON_CT_TABLE_FULL)
)

func (r Reason) String() string {
	switch r {
	case ReasonNone:
		return "none"
	case ReasonPolicyAllow:
		return "allowed by policy"
	case ReasonNotIsolated:
		return "not isolated"
	case ReasonHost:
		return "from the node"
	case ReasonPolicyMiss:
		return "no rule allows"
	case ReasonMalformed:
		return "malformed packet"
	case ReasonFragment:
		return "fragment of an unknown datagram"
	case ReasonRevoked:
		return "no longer allowed"
	case ReasonNonIP:
		return "not IP"
	case ReasonTCPNotNew:
		return "TCP packet of no tracked connection"
	case ReasonServiceSourceUnknown:
		return "service traffic from no local pod"
	case ReasonServiceUnconfirmed:
		return "reply of service traffic never allowed after DNAT"
	case ReasonSpoofedSource:
		return "spoofed source"
	case ReasonRouterMessage:
		return "router message from a pod"
	case ReasonConntrackEndpointLimit:
		return "conntrack share used up"
	case ReasonConntrackTableFull:
		return "the node's conntrack table is full"
	}
	return fmt.Sprintf("reason(%d)", uint32(r))
}

// Event is one flow event of the programs.
type Event struct {
	// Time is when the program saw the packet, on the wall clock.
	Time time.Time
	// Monotonic is the program's own timestamp (CLOCK_MONOTONIC).
	Monotonic time.Duration
	Ifindex   uint32
	// Pod is the endpoint behind Ifindex as of the last Sync; zero if
	// unknown.
	Pod                      policy.PodRef
	Direction                policy.Direction
	Verdict                  Verdict
	Reason                   Reason
	SrcIdentity, DstIdentity policy.NumericIdentity
	// RuleID is the allowing rule's source id (policy.State.RuleSource),
	// 0 when no rule decided.
	RuleID   uint32
	Protocol policy.Protocol
	// Src and Dst are invalid when the packet was not parsed far enough.
	// Ports are 0 for protocols without them.
	Src, Dst netip.AddrPort
	// AfterDNAT says the packet was judged after the node's DNAT of a
	// service address: Dst is the backend, and Service the address the
	// pod sent to (invalid if unknown).
	AfterDNAT bool
	Service   netip.AddrPort
}

// eventSize is the size of struct event (bpf/include/abi.h);
// legacyEventSize that of the programs before service judgement (a
// restarted enforcer reads their events while adopted links switch).
const (
	eventSize       = int(unsafe.Sizeof(bpf.PalisadeEvent{}))
	legacyEventSize = 72
)

// DecodeEvent decodes one ring buffer record. It fails on a record too
// short for struct event or with an unknown address family; the rest is
// reported as found, for flow records must show what the kernel said.
func DecodeEvent(raw []byte) (Event, error) {
	if len(raw) != legacyEventSize && len(raw) < eventSize {
		return Event{}, fmt.Errorf("decode event: %d bytes, want %d", len(raw), eventSize)
	}
	if len(raw) == legacyEventSize {
		raw = append(append([]byte(nil), raw...), make([]byte, eventSize-len(raw))...)
	}
	var e bpf.PalisadeEvent
	if _, err := binary.Decode(raw[:eventSize], binary.NativeEndian, &e); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	ev := Event{
		Monotonic:   time.Duration(e.TimestampNs),
		Ifindex:     e.Ifindex,
		Direction:   policy.Direction(e.Direction),
		Verdict:     Verdict(e.Verdict),
		Reason:      Reason(e.Reason),
		SrcIdentity: policy.NumericIdentity(e.SrcIdentity),
		DstIdentity: policy.NumericIdentity(e.DstIdentity),
		RuleID:      e.RuleId,
		Protocol:    policy.Protocol(e.Protocol),
	}
	ev.AfterDNAT = e.Flags&uint32(bpf.PalisadeEventFlagsEVENT_F_SERVICE) != 0
	hasService := ev.AfterDNAT && e.ServiceAddr != [16]byte{}
	switch e.Family {
	case 0: // not parsed far enough to have addresses
	case uint8(bpf.PalisadeFamilyFAMILY_IPV4):
		ev.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(e.Saddr[:4])), e.Sport)
		ev.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(e.Daddr[:4])), e.Dport)
		if hasService {
			ev.Service = netip.AddrPortFrom(netip.AddrFrom4([4]byte(e.ServiceAddr[:4])), e.ServicePort)
		}
	case uint8(bpf.PalisadeFamilyFAMILY_IPV6):
		ev.Src = netip.AddrPortFrom(netip.AddrFrom16(e.Saddr), e.Sport)
		ev.Dst = netip.AddrPortFrom(netip.AddrFrom16(e.Daddr), e.Dport)
		if hasService {
			ev.Service = netip.AddrPortFrom(netip.AddrFrom16(e.ServiceAddr), e.ServicePort)
		}
	default:
		return Event{}, fmt.Errorf("decode event: unknown address family %d", e.Family)
	}
	return ev, nil
}

// Events streams the programs' flow events until ctx ends or the ring
// buffer fails; the channel is closed then. Records that do not decode
// are dropped with a log line; events the kernel could not queue are
// counted in Counters ("event_lost"). There should be one reader per
// node: concurrent readers split the events between them.
func (d *Datapath) Events(ctx context.Context) <-chan Event {
	out := make(chan Event, 1024)
	rd, err := ringbuf.NewReader(d.objs.Events)
	if err != nil {
		d.log.Error("open event ring buffer", "error", err)
		close(out)
		return out
	}
	// The wall clock at monotonic zero: events carry monotonic stamps.
	boot := time.Now().Add(-monotonicNow())
	go func() {
		<-ctx.Done()
		rd.Close() // unblocks Read
	}()
	go func() {
		defer close(out)
		var rec ringbuf.Record
		for {
			if err := rd.ReadInto(&rec); err != nil {
				if !errors.Is(err, ringbuf.ErrClosed) {
					d.log.Error("read event ring buffer", "error", err)
				}
				return
			}
			ev, err := DecodeEvent(rec.RawSample)
			if err != nil {
				d.log.Warn("dropping undecodable event", "error", err)
				continue
			}
			ev.Time = boot.Add(ev.Monotonic)
			ev.Pod = (*d.pods.Load())[ev.Ifindex]
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
