package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// parseSourceCIDRs reads an AnnotationSourceCIDRs value: comma-separated
// CIDRs, spaces around each allowed. Each must be canonical (no host bits
// set), so that what the annotation says is exactly what is allowed. On
// any error it returns nil: an invalid annotation grants nothing.
func parseSourceCIDRs(value string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, part := range strings.Split(value, ",") {
		s := strings.TrimSpace(part)
		if s == "" {
			return nil, fmt.Errorf("entry %d is empty", i)
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %q is not a CIDR", i, s)
		}
		if p.Addr().Zone() != "" {
			return nil, fmt.Errorf("entry %d: %q has a zone", i, s)
		}
		if p.Addr().Is4In6() {
			return nil, fmt.Errorf("entry %d: %q is IPv4-mapped; write the IPv4 range", i, s)
		}
		if m := p.Masked(); m != p {
			return nil, fmt.Errorf("entry %d: %q has host bits set; the range is %s", i, s, m)
		}
		out = append(out, p)
	}
	slices.SortFunc(out, comparePrefix)
	return slices.Compact(out), nil
}
