package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"sigs.k8s.io/yaml"
)

const (
	testVersion = "v0.0.0-imagetest"
	testEpoch   = 1700000000
	chartYAML   = "../../charts/palisade/Chart.yaml"
)

// built is the image of the first full build (go build included), shared
// by the tests that only read it.
var (
	builtOnce sync.Once
	builtPath string
	builtOut  string
	builtErr  error
)

func buildArgs(out string, extra ...string) []string {
	return append([]string{"-o", out, "-version", testVersion, "-epoch", "1700000000", "-revision", "0123456789abcdef", "-chart", chartYAML}, extra...)
}

func firstBuild(t *testing.T) (string, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the palisade binary")
	}
	builtOnce.Do(func() {
		dir, err := os.MkdirTemp("", "palisade-image-test-")
		if err != nil {
			builtErr = err
			return
		}
		builtPath = filepath.Join(dir, "first", "palisade-image.tar")
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), buildArgs(builtPath), &stdout, &stderr); err != nil {
			builtErr = errors.Join(err, errors.New(stderr.String()))
		}
		builtOut = stdout.String()
	})
	if builtErr != nil {
		t.Fatalf("build image: %v", builtErr)
	}
	return builtPath, builtOut
}

func fileDigest(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestSameInputsSameDigest builds the image twice from scratch (the binary
// too): the image digest and the tarball's bytes are equal. A changed input
// (the version) changes the digest.
func TestSameInputsSameDigest(t *testing.T) {
	first, out1 := firstBuild(t)
	second := filepath.Join(t.TempDir(), "palisade-image.tar")
	var out2, stderr bytes.Buffer
	if err := run(t.Context(), buildArgs(second), &out2, &stderr); err != nil {
		t.Fatalf("second build: %v\n%s", err, stderr.String())
	}
	d1, d2 := firstLine(out1), firstLine(out2.String())
	if d1 != d2 {
		t.Fatalf("same inputs, different images:\n%s\n%s", d1, d2)
	}
	if fileDigest(t, first) != fileDigest(t, second) {
		t.Fatal("same inputs, different tarball bytes")
	}
	t.Logf("%s", d1)

	// Another version label on the very same binary is another image.
	bin := extractBinary(t, loadImage(t, first, testVersion))
	third := filepath.Join(t.TempDir(), "palisade-image.tar")
	var out3 bytes.Buffer
	args := []string{"-o", third, "-version", "v9.9.9", "-epoch", "1700000000", "-revision", "0123456789abcdef", "-binary", bin}
	if err := run(t.Context(), args, &out3, io.Discard); err != nil {
		t.Fatal(err)
	}
	f1, f3 := strings.Fields(d1), strings.Fields(firstLine(out3.String()))
	if f3[2] == f1[2] || f3[4] == f1[4] {
		t.Fatalf("different version, same image: %s", f3)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func loadImage(t *testing.T, path, version string) v1.Image {
	t.Helper()
	tag, err := name.NewTag(defaultRepository + ":" + version)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatalf("load %s from %s (what `kind load image-archive` reads): %v", tag, path, err)
	}
	return img
}

// TestImageContents reads the tarball back as a loader would and checks
// the manifest, the config, the single layer's files and that the binary
// inside runs.
func TestImageContents(t *testing.T) {
	path, out := firstBuild(t)
	img := loadImage(t, path, testVersion)
	imageID, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	// The image ID (config digest) survives the docker-save form; the
	// manifest a loader writes is its own.
	if f := strings.Fields(firstLine(out)); len(f) != 5 || f[0] != defaultRepository+":"+testVersion || f[2] != imageID.String() {
		t.Errorf("printed %q, want %s:%s image-id %s oci-manifest ...", out, defaultRepository, testVersion, imageID)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 1 {
		t.Errorf("manifest %+v: want one layer", m)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	created := time.Unix(testEpoch, 0).UTC()
	c := cf.Config
	switch {
	case cf.OS != "linux" || cf.Architecture != runtime.GOARCH:
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	case !cf.Created.Time.Equal(created):
		t.Errorf("created %v, want %v", cf.Created, created)
	case len(c.Entrypoint) != 1 || c.Entrypoint[0] != "/palisade" || len(c.Cmd) != 0:
		t.Errorf("entrypoint %q cmd %q, want [/palisade] and none", c.Entrypoint, c.Cmd)
	case c.User != "65532:65532":
		t.Errorf("user %q, want 65532:65532 (nonroot)", c.User)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.title":    "palisade",
		"org.opencontainers.image.version":  testVersion,
		"org.opencontainers.image.revision": "0123456789abcdef",
		"org.opencontainers.image.created":  "2023-11-14T22:13:20Z",
		"org.opencontainers.image.source":   "https://github.com/palisade-dev/palisade",
	} {
		if got := c.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	for _, h := range cf.History {
		if !h.Created.Time.Equal(created) {
			t.Errorf("history entry created %v, want %v", h.Created, created)
		}
	}

	files := layerFiles(t, img)
	var names []string
	for _, f := range files {
		names = append(names, f.hdr.Name)
		if !f.hdr.ModTime.Equal(created) {
			t.Errorf("%s mtime %v, want %v", f.hdr.Name, f.hdr.ModTime, created)
		}
	}
	if want := "etc/ etc/group etc/passwd home/ home/nonroot/ palisade tmp/"; strings.Join(names, " ") != want {
		t.Errorf("layer holds %v, want %s", names, want)
	}
	byName := map[string]layerFile{}
	for _, f := range files {
		byName[f.hdr.Name] = f
	}
	if p := string(byName["etc/passwd"].data); !strings.Contains(p, "nonroot:x:65532:65532:") || !strings.HasPrefix(p, "root:x:0:0:") {
		t.Errorf("/etc/passwd lacks root and nonroot (65532):\n%s", p)
	}
	if h := byName["palisade"].hdr; h.Mode != 0o755 || h.Uid != 0 {
		t.Errorf("/palisade mode %o uid %d, want 0755 owned by root", h.Mode, h.Uid)
	}
	if h := byName["home/nonroot/"].hdr; h.Uid != 65532 {
		t.Errorf("/home/nonroot owned by %d, want 65532", h.Uid)
	}

	bin := extractBinary(t, img)
	got, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("palisade version from the image: %v\n%s", err, got)
	}
	if !strings.HasPrefix(string(got), "palisade "+testVersion+" (") || !strings.Contains(string(got), "linux/"+runtime.GOARCH) {
		t.Errorf("palisade version printed %q, want the stamped version %s", got, testVersion)
	}
	// Static: no interpreter, so it runs on an empty base.
	if ldd, err := exec.Command("file", bin).Output(); err == nil && !strings.Contains(string(ldd), "statically linked") {
		t.Errorf("the binary is not static: %s", ldd)
	}
}

type layerFile struct {
	hdr  *tar.Header
	data []byte
}

func layerFiles(t *testing.T, img v1.Image) []layerFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []layerFile
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, layerFile{h, data})
	}
}

// extractBinary writes /palisade from the image's layer to a temp file.
func extractBinary(t *testing.T, img v1.Image) string {
	t.Helper()
	for _, f := range layerFiles(t, img) {
		if f.hdr.Name == "palisade" {
			p := filepath.Join(t.TempDir(), "palisade")
			if err := os.WriteFile(p, f.data, 0o755); err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	t.Fatal("no /palisade in the layer")
	return ""
}

// TestAssembleOCI: the image built in memory is an OCI image (manifest,
// config and layer media types) whose bytes depend only on the inputs.
func TestAssembleOCI(t *testing.T) {
	o := options{version: "v1.2.3", arch: "arm64", epoch: 42, revision: "abc"}
	img, err := assemble([]byte("#!binary"), []byte("ca"), o)
	if err != nil {
		t.Fatal(err)
	}
	again, err := assemble([]byte("#!binary"), []byte("ca"), o)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Fatalf("same inputs, digests %s and %s", d1, d2)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
		t.Errorf("manifest %+v: want OCI media types and one layer", m)
	}
	cf, _ := img.ConfigFile()
	if cf.Architecture != "arm64" || !strings.Contains(strings.Join(cf.Config.Env, " "), "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt") {
		t.Errorf("config %+v: want arm64 and SSL_CERT_FILE with a CA bundle", cf)
	}
	var names []string
	for _, f := range layerFiles(t, img) {
		names = append(names, f.hdr.Name)
	}
	if !strings.Contains(strings.Join(names, " "), "etc/ssl/certs/ca-certificates.crt") {
		t.Errorf("layer %v lacks the CA bundle", names)
	}
	for _, other := range []options{{version: "v1.2.4", arch: "arm64", epoch: 42, revision: "abc"}, {version: "v1.2.3", arch: "arm64", epoch: 43, revision: "abc"}} {
		img3, err := assemble([]byte("#!binary"), []byte("ca"), other)
		if err != nil {
			t.Fatal(err)
		}
		if d3, _ := img3.Digest(); d3 == d1 {
			t.Errorf("options %+v give the same digest as %+v", other, o)
		}
	}
}

// TestChartDefaultsToThisImage: with no -version the tag is the chart's
// appVersion, and the chart's default repository is this tool's, so a
// default install runs the image `make image` built.
func TestChartDefaultsToThisImage(t *testing.T) {
	v, err := appVersion(chartYAML)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../../charts/palisade/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var vals struct {
		Image struct{ Repository, Tag string } `json:"image"`
	}
	if err := yaml.Unmarshal(data, &vals); err != nil {
		t.Fatal(err)
	}
	if vals.Image.Repository != defaultRepository || vals.Image.Tag != "" {
		t.Errorf("chart image %s:%q, want %s with the tag defaulting to appVersion %s", vals.Image.Repository, vals.Image.Tag, defaultRepository, v)
	}
}

// TestBadInput: bad flags and environment are usage errors naming the input.
func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{nil, "", "-o: required"},
		{[]string{"-o", "x.tar", "extra"}, "", "unexpected arguments"},
		{[]string{"-o", "x.tar", "-version", "v1"}, "yesterday", "SOURCE_DATE_EPOCH=\"yesterday\""},
		{[]string{"-o", "x.tar", "-chart", "no/such/Chart.yaml"}, "", "-version not given"},
		{[]string{"-o", "x.tar", "-nope"}, "", "flag provided but not defined"},
	} {
		t.Setenv("SOURCE_DATE_EPOCH", tc.env)
		err := run(t.Context(), tc.args, io.Discard, io.Discard)
		var u usageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %q (SOURCE_DATE_EPOCH=%q): %v, want a usage error containing %q", tc.args, tc.env, err, tc.want)
		}
	}
	if _, err := os.Stat("x.tar"); err == nil {
		t.Error("a failed run wrote x.tar")
	}
}

func TestResolveEpoch(t *testing.T) {
	for _, tc := range []struct {
		flag int64
		env  string
		want int64
	}{{-1, "", 0}, {-1, "1700000000", 1700000000}, {5, "1700000000", 5}, {0, "9", 0}} {
		got, err := resolveEpoch(tc.flag, tc.env)
		if err != nil || got != tc.want {
			t.Errorf("resolveEpoch(%d, %q) = %d, %v; want %d", tc.flag, tc.env, got, err, tc.want)
		}
	}
}
