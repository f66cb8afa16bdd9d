package bpf

import (
	"reflect"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// The layouts Go and the kernel share. A change here breaks every
// enforcer of the other version still running against pinned maps, so
// it must be deliberate: edit include/abi.h, regenerate, then this table.
var abiLayouts = []struct {
	goType  any
	cStruct string
	size    uintptr
	offsets map[string]uintptr // Go field name → byte offset
}{
	{PalisadeIpKey{}, "ip_key", 24, map[string]uintptr{"Prefixlen": 0, "Family": 4, "Pad": 5, "Addr": 8}},
	{PalisadeIdentityValue{}, "identity_value", 4, map[string]uintptr{"Identity": 0}},
	{PalisadeServiceValue{}, "service_value", 4, map[string]uintptr{"Flags": 0}},
	{PalisadeEndpointValue{}, "endpoint_value", 16, map[string]uintptr{"Identity": 0, "Flags": 4, "Revision": 8, "Pad": 12}},
	{PalisadePolicyKey{}, "policy_key", 12, map[string]uintptr{"LocalIdentity": 0, "PeerIdentity": 4, "Direction": 8, "Protocol": 9, "Dport": 10}},
	{PalisadePolicyValue{}, "policy_value", 8, map[string]uintptr{"Verdict": 0, "Pad": 1, "RuleId": 4}},
	{PalisadePolicyRangeKey{}, "policy_range_key", 16, map[string]uintptr{"Prefixlen": 0, "LocalIdentity": 4, "PeerIdentity": 8, "Direction": 12, "Protocol": 13, "Dport": 14}},
	{PalisadeCtKey{}, "ct_key", 44, map[string]uintptr{"Ifindex": 0, "Sport": 4, "Dport": 6, "Saddr": 8, "Daddr": 24, "Protocol": 40, "Family": 41, "Direction": 42, "Pad": 43}},
	{PalisadeCtValue{}, "ct_value", 32, map[string]uintptr{"CreatedNs": 0, "LastSeenNs": 8, "Revision": 16, "Flags": 20, "RuleId": 24, "ShareIfindex": 28}},
	{PalisadeEvent{}, "event", 96, map[string]uintptr{"TimestampNs": 0, "Ifindex": 8, "SrcIdentity": 12, "DstIdentity": 16, "RuleId": 20,
		"Saddr": 24, "Daddr": 40, "Sport": 56, "Dport": 58, "Protocol": 60, "Family": 61, "Direction": 62, "Verdict": 63, "Reason": 64,
		"Flags": 68, "ServiceAddr": 72, "ServicePort": 88, "Pad": 90}},
	{PalisadeTokenBucket{}, "token_bucket", 16, map[string]uintptr{"CreditNs": 0, "LastNs": 8}},
	{PalisadeEventBucket{}, "event_bucket", 24, map[string]uintptr{"Tokens": 0, "Lost": 16}},
	{PalisadeFragKey{}, "frag_key", 40, map[string]uintptr{"Saddr": 0, "Daddr": 16, "Id": 32, "Protocol": 36, "Family": 37, "Pad": 38}},
	{PalisadeFragValue{}, "frag_value", 4, map[string]uintptr{"Sport": 0, "Dport": 2}},
	{PalisadeAddrKey{}, "addr_key", 20, map[string]uintptr{"Family": 0, "Pad": 1, "Addr": 4}},
	{PalisadeEndpointIpValue{}, "endpoint_ip_value", 4, map[string]uintptr{"Ifindex": 0}},
	{PalisadeServiceOriginKey{}, "service_origin_key", 24, map[string]uintptr{"Ifindex": 0, "Sport": 4, "Protocol": 6, "Family": 7, "Saddr": 8}},
	{PalisadeServiceOriginValue{}, "service_origin_value", 20, map[string]uintptr{"Daddr": 0, "Dport": 16, "Pad": 18}},
	{PalisadeSourceCidrKey{}, "source_cidr_key", 28, map[string]uintptr{"Prefixlen": 0, "Ifindex": 4, "Family": 8, "Pad": 9, "Addr": 12}},
	{PalisadeSourceCidrValue{}, "source_cidr_value", 4, map[string]uintptr{"Flags": 0}},
}

func TestABILayoutPinned(t *testing.T) {
	spec, err := LoadPalisade()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range abiLayouts {
		t.Run(l.cStruct, func(t *testing.T) {
			typ := reflect.TypeOf(l.goType)
			if typ.Size() != l.size {
				t.Errorf("Go %s is %d bytes, pinned %d", typ.Name(), typ.Size(), l.size)
			}
			fields := map[string]uintptr{}
			for i := 0; i < typ.NumField(); i++ {
				if f := typ.Field(i); f.Name != "_" {
					fields[f.Name] = f.Offset
				}
			}
			if !reflect.DeepEqual(fields, l.offsets) {
				t.Errorf("Go %s offsets %v, pinned %v", typ.Name(), fields, l.offsets)
			}

			var s *btf.Struct
			if err := spec.Types.TypeByName(l.cStruct, &s); err != nil {
				t.Fatalf("find struct %s in the object's BTF: %v", l.cStruct, err)
			}
			if uintptr(s.Size) != l.size {
				t.Errorf("C struct %s is %d bytes, pinned %d", l.cStruct, s.Size, l.size)
			}
			if len(s.Members) != len(l.offsets) {
				t.Errorf("C struct %s has %d members, pinned %d", l.cStruct, len(s.Members), len(l.offsets))
			}
			for i, m := range s.Members {
				if i >= typ.NumField()-1 {
					break
				}
				goField := typ.Field(i + 1) // after the HostLayout marker
				if uintptr(m.Offset.Bytes()) != goField.Offset {
					t.Errorf("%s.%s at %d, Go %s at %d", l.cStruct, m.Name, m.Offset.Bytes(), goField.Name, goField.Offset)
				}
			}
		})
	}
}

// Values Go writes into maps: renumbering any of them silently changes
// what existing map contents mean.
func TestABIConstantsPinned(t *testing.T) {
	pinned := map[string][2]uint64{
		"IDENTITY_WORLD":                {uint64(PalisadeIdentityIDENTITY_WORLD), 1},
		"IDENTITY_HOST":                 {uint64(PalisadeIdentityIDENTITY_HOST), 2},
		"FAMILY_IPV4":                   {uint64(PalisadeFamilyFAMILY_IPV4), 4},
		"FAMILY_IPV6":                   {uint64(PalisadeFamilyFAMILY_IPV6), 6},
		"DIR_INGRESS":                   {uint64(PalisadeDirectionDIR_INGRESS), 1},
		"DIR_EGRESS":                    {uint64(PalisadeDirectionDIR_EGRESS), 2},
		"ENDPOINT_F_INGRESS_ISOLATED":   {uint64(PalisadeEndpointFlagsENDPOINT_F_INGRESS_ISOLATED), 1},
		"ENDPOINT_F_EGRESS_ISOLATED":    {uint64(PalisadeEndpointFlagsENDPOINT_F_EGRESS_ISOLATED), 2},
		"ENDPOINT_F_AUDIT":              {uint64(PalisadeEndpointFlagsENDPOINT_F_AUDIT), 4},
		"POLICY_ALLOW":                  {uint64(PalisadePolicyVerdictPOLICY_ALLOW), 1},
		"EVENT_DROP":                    {uint64(PalisadeEventVerdictEVENT_DROP), 1},
		"EVENT_AUDIT_WOULD_DROP":        {uint64(PalisadeEventVerdictEVENT_AUDIT_WOULD_DROP), 2},
		"EVENT_ALLOWED_NEW":             {uint64(PalisadeEventVerdictEVENT_ALLOWED_NEW), 3},
		"EVENT_F_SERVICE":               {uint64(PalisadeEventFlagsEVENT_F_SERVICE), 1},
		"CT_F_DEFERRED":                 {uint64(PalisadeCtFlagsCT_F_DEFERRED), 2},
		"CT_F_SEEN_REPLY":               {uint64(PalisadeCtFlagsCT_F_SEEN_REPLY), 4},
		"CT_F_SERVICE":                  {uint64(PalisadeCtFlagsCT_F_SERVICE), 8},
		"CT_F_CONFIRMED":                {uint64(PalisadeCtFlagsCT_F_CONFIRMED), 16},
		"REASON_TCP_NOT_NEW":            {uint64(PalisadeReasonREASON_TCP_NOT_NEW), 9},
		"REASON_SERVICE_SOURCE_UNKNOWN": {uint64(PalisadeReasonREASON_SERVICE_SOURCE_UNKNOWN), 10},
		"REASON_SERVICE_UNCONFIRMED":    {uint64(PalisadeReasonREASON_SERVICE_UNCONFIRMED), 11},
		"REASON_SPOOFED_SOURCE":         {uint64(PalisadeReasonREASON_SPOOFED_SOURCE), 12},
		"REASON_ROUTER_MESSAGE":         {uint64(PalisadeReasonREASON_ROUTER_MESSAGE), 13},
		"CT_F_CLOSING":                  {uint64(PalisadeCtFlagsCT_F_CLOSING), 32},
		"REASON_CT_ENDPOINT_LIMIT":      {uint64(PalisadeReasonREASON_CT_ENDPOINT_LIMIT), 14},
		"REASON_CT_TABLE_FULL":          {uint64(PalisadeReasonREASON_CT_TABLE_FULL), 15},
		"COUNTER_MAX":                   {uint64(PalisadeCounterCOUNTER_MAX), 48},
	}
	for name, v := range pinned {
		if v[0] != v[1] {
			t.Errorf("%s = %d, pinned %d", name, v[0], v[1])
		}
	}
}

func TestMapSizesApply(t *testing.T) {
	spec, err := NewSpec(Config{IPIdentity: 1000, Conntrack: 2000, Events: 1 << 16, SourceCIDRs: 300})
	if err != nil {
		t.Fatal(err)
	}
	var specs PalisadeSpecs
	if err := spec.Assign(&specs); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][2]uint32{
		"ip_identity":  {specs.IpIdentity.MaxEntries, 1000},
		"conntrack":    {specs.Conntrack.MaxEntries, 2000},
		"events":       {specs.Events.MaxEntries, 1 << 16},
		"policy":       {specs.Policy.MaxEntries, 1 << 16},
		"source_cidrs": {specs.SourceCidrs.MaxEntries, 300},
	} {
		if got[0] != got[1] {
			t.Errorf("%s max entries %d, want %d", name, got[0], got[1])
		}
	}
}
