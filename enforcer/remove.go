package enforcer

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/palisade-dev/palisade/enforcer/datapath"
)

// RemoveDatapath takes a stopped enforcer's datapath off the node: it
// adopts what is pinned under pinDir (as a restarted enforcer would),
// detaches every link, unpins every map and removes pinDir. netns is the
// network namespace holding the pods' interfaces ("" for the caller's).
// It reports false, and touches nothing, when pinDir does not exist.
// Never run it beside a running enforcer of that pin directory: that one
// would keep enforcing with its own file descriptors and re-pin.
func RemoveDatapath(pinDir, netns string, log *slog.Logger) (bool, error) {
	if pinDir == "" {
		return false, errors.New("remove datapath: empty pin directory")
	}
	if _, err := os.Stat(pinDir); errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("remove datapath: %w", err)
	}
	dp, err := datapath.Open(datapath.Options{PinDir: pinDir, NetNS: netns, Logger: log})
	if err != nil {
		return false, fmt.Errorf("remove datapath %s: %w", pinDir, err)
	}
	if err := dp.Remove(); err != nil {
		return false, err
	}
	return true, nil
}

// RemoveAllDatapaths removes every node's datapath under root (one
// directory per node name, as datapath.DefaultPinRoot holds them), then
// root itself once empty. It returns the pin directories it removed.
func RemoveAllDatapaths(root, netns string, log *slog.Logger) ([]string, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("remove datapaths: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		ok, err := RemoveDatapath(dir, netns, log)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			removed = append(removed, dir)
		}
	}
	if len(errs) == 0 {
		if err := os.Remove(root); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove datapaths: %w", err))
		}
	}
	return removed, errors.Join(errs...)
}
