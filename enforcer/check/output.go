package check

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

// Reachability is the JSON form of results (`-o json`) and the shape of
// an --expect file.
type Reachability struct {
	Results []Reach `json:"results"`
}

// Reach is one probe's outcome. In an expectation file Reason is optional
// and ignored.
type Reach struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
	Allowed  bool   `json:"allowed"`
	Reason   string `json:"reason,omitempty"`
}

// ToReachability converts results to their JSON form.
func ToReachability(results []Result) Reachability {
	out := Reachability{Results: make([]Reach, len(results))}
	for i, r := range results {
		out.Results[i] = Reach{
			From: r.From.String(), To: r.To.String(),
			Port: int(r.Port.Number), Protocol: r.Port.Protocol.String(),
			Allowed: r.Allowed(), Reason: r.Reason(),
		}
	}
	return out
}

// WriteJSON writes results as one line of
// {"results":[{"from","to","port","protocol","allowed","reason"}]}.
func WriteJSON(w io.Writer, results []Result) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ToReachability(results)); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// WriteTable writes one truth table per port, in the style of the upstream
// network-policy e2e tests: a row per source pod, a column per
// destination, "." where the connection is allowed, "X" where it is
// denied, "-" on the diagonal and blank where nothing was probed.
func WriteTable(w io.Writer, results []Result) error {
	var ports []Port
	cells := map[Port]map[[2]policy.PodRef]bool{}
	var from, to []policy.PodRef
	allowed := 0
	for _, r := range results {
		if cells[r.Port] == nil {
			ports = append(ports, r.Port)
			cells[r.Port] = map[[2]policy.PodRef]bool{}
		}
		cells[r.Port][[2]policy.PodRef{r.From, r.To}] = r.Allowed()
		if !slices.Contains(from, r.From) {
			from = append(from, r.From)
		}
		if !slices.Contains(to, r.To) {
			to = append(to, r.To)
		}
		if r.Allowed() {
			allowed++
		}
	}
	slices.SortFunc(from, comparePod)
	slices.SortFunc(to, comparePod)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, port := range ports {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		header := []string{port.String()}
		for _, t := range to {
			header = append(header, t.String())
		}
		fmt.Fprintln(tw, strings.Join(header, "\t"))
		for _, f := range from {
			row := []string{f.String()}
			for _, t := range to {
				cell := ""
				if v, ok := cells[port][[2]policy.PodRef{f, t}]; ok {
					cell = "X"
					if v {
						cell = "."
					}
				} else if f == t {
					cell = "-"
				}
				row = append(row, cell)
			}
			fmt.Fprintln(tw, strings.TrimRight(strings.Join(row, "\t"), "\t"))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	_, err := fmt.Fprintf(w, "\n%d of %d connections allowed (rows: from, columns: to; '.' allowed, 'X' denied)\n", allowed, len(results))
	if err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

func comparePod(a, b policy.PodRef) int {
	if a.Namespace != b.Namespace {
		if a.Namespace < b.Namespace {
			return -1
		}
		return 1
	}
	switch {
	case a.Name < b.Name:
		return -1
	case a.Name > b.Name:
		return 1
	}
	return 0
}
