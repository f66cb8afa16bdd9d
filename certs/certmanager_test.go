package certs_test

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/palisade-dev/palisade/certs"
)

func TestCertManagerObjects(t *testing.T) {
	o := certs.CertManagerOptions{Namespace: "palisade-system", ServiceName: "palisade-webhook", SecretName: "palisade-webhook-tls"}
	objs, err := certs.CertManagerObjects(o)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, u := range objs {
		kinds = append(kinds, u.GetKind()+"/"+u.GetName())
		if u.GetAPIVersion() != "cert-manager.io/v1" || u.GetNamespace() != "palisade-system" {
			t.Errorf("%s: apiVersion %s namespace %s", u.GetName(), u.GetAPIVersion(), u.GetNamespace())
		}
		// Only JSON types: DeepCopy panics otherwise, and the chart
		// renders these as YAML.
		u.DeepCopy()
		if _, err := yaml.Marshal(u.Object); err != nil {
			t.Errorf("%s: %v", u.GetName(), err)
		}
	}
	want := "Issuer/palisade-webhook-selfsigned Certificate/palisade-webhook-ca Issuer/palisade-webhook-ca Certificate/palisade-webhook"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("objects %s, want %s", got, want)
	}

	str := func(u *unstructured.Unstructured, path ...string) string {
		v, _, _ := unstructured.NestedString(u.Object, path...)
		return v
	}
	if _, ok, _ := unstructured.NestedMap(objs[0].Object, "spec", "selfSigned"); !ok {
		t.Error("first Issuer is not self-signed")
	}
	ca := objs[1]
	if isCA, _, _ := unstructured.NestedBool(ca.Object, "spec", "isCA"); !isCA {
		t.Error("CA Certificate lacks isCA")
	}
	if str(ca, "spec", "issuerRef", "name") != "palisade-webhook-selfsigned" || str(ca, "spec", "secretName") != "palisade-webhook-ca" {
		t.Errorf("CA Certificate issuer/secret: %v", ca.Object["spec"])
	}
	if str(ca, "spec", "duration") != "43800h" {
		t.Errorf("CA duration %q", str(ca, "spec", "duration"))
	}
	if str(objs[2], "spec", "ca", "secretName") != "palisade-webhook-ca" {
		t.Errorf("CA Issuer does not use the CA secret: %v", objs[2].Object["spec"])
	}
	serving := objs[3]
	dns, _, _ := unstructured.NestedStringSlice(serving.Object, "spec", "dnsNames")
	if strings.Join(dns, ",") != strings.Join(certs.DNSNames("palisade-webhook", "palisade-system"), ",") {
		t.Errorf("dnsNames %v", dns)
	}
	for path, want := range map[string]string{
		"spec.secretName":           "palisade-webhook-tls",
		"spec.issuerRef.name":       "palisade-webhook-ca",
		"spec.issuerRef.kind":       "Issuer",
		"spec.duration":             "8760h",
		"spec.renewBefore":          "2920h",
		"spec.privateKey.algorithm": "ECDSA",
		"spec.commonName":           "palisade-webhook.palisade-system.svc",
	} {
		if got := str(serving, strings.Split(path, ".")...); got != want {
			t.Errorf("serving Certificate %s = %q, want %q", path, got, want)
		}
	}
	if size, _, _ := unstructured.NestedInt64(serving.Object, "spec", "privateKey", "size"); size != 256 {
		t.Errorf("key size %d", size)
	}
	usages, _, _ := unstructured.NestedStringSlice(serving.Object, "spec", "usages")
	if strings.Join(usages, ",") != "server auth,digital signature" {
		t.Errorf("usages %v", usages)
	}

	ann := certs.CAInjectionAnnotations(o)
	if len(ann) != 1 || ann["cert-manager.io/inject-ca-from"] != "palisade-system/palisade-webhook" {
		t.Errorf("annotations %v", ann)
	}
	// The annotation names the serving Certificate that exists.
	if ns, name, _ := strings.Cut(ann[certs.InjectCAFromAnnotation], "/"); ns != serving.GetNamespace() || name != serving.GetName() {
		t.Errorf("annotation points at %s/%s, the Certificate is %s/%s", ns, name, serving.GetNamespace(), serving.GetName())
	}
}

func TestCertManagerObjectsRejectBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		o       certs.CertManagerOptions
		wantErr string
	}{
		{name: "no namespace", o: certs.CertManagerOptions{ServiceName: "s", SecretName: "x"}, wantErr: "Namespace, ServiceName and SecretName are required"},
		{name: "renewal longer than life", o: certs.CertManagerOptions{Namespace: "n", ServiceName: "s", SecretName: "x", Duration: time.Hour, RenewBefore: 2 * time.Hour}, wantErr: "RenewBefore (2h0m0s) < Duration (1h0m0s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := certs.CertManagerObjects(tc.o); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}
