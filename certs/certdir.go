package certs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// Names of the files in a certificate directory, controller-runtime's
// webhook server defaults.
const (
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
)

// writeCertDir puts a serving certificate and key where the webhook
// server's certwatcher reads them, and reports whether anything changed.
// Each file is replaced by rename, so a reader never sees half a file; a
// reader that sees the new key with the old certificate gets a mismatch,
// which certwatcher rejects while it keeps serving the previous pair, and
// the second rename brings the pair together. The key goes first: the
// certificate's change is what a reader acts on last.
func writeCertDir(dir string, certPEM, keyPEM []byte) (bool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("create certificate directory: %w", err)
	}
	changed := false
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{KeyFile, keyPEM, 0o600}, {CertFile, certPEM, 0o644}} {
		path := filepath.Join(dir, f.name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, f.data) {
			continue
		}
		if err := writeFileAtomic(path, f.data, f.mode); err != nil {
			return changed, err
		}
		changed = true
	}
	return changed, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
