package gatekeeper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	constraintclient "github.com/open-policy-agent/frameworks/constraint/pkg/client"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/drivers/k8scel"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/expansion"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/target"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// CustomRules are Gatekeeper rules evaluated in process. Build them with
// LoadCustomRules or FromObjects; they do not change afterwards and are
// safe for concurrent use.
type CustomRules struct {
	client    *constraintclient.Client
	expansion *expansion.System
	// expansions counts the ExpansionTemplates: with none, a request is
	// not decoded for expansion at all.
	expansions  int
	constraints int
}

// Len returns the number of constraints loaded.
func (c *CustomRules) Len() int {
	if c == nil {
		return 0
	}
	return c.constraints
}

// LoadCustomRules reads every *.yaml and *.yml file in dir (not its
// subdirectories), each possibly holding several documents:
// ConstraintTemplates (Rego or CEL), constraints and ExpansionTemplates.
// Every problem is reported, each naming the file, the document and the
// reason; nothing is loaded unless everything is.
func LoadCustomRules(ctx context.Context, dir string) (*CustomRules, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load custom rules: %w", err)
	}
	var names []string
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var docs []*document
	for _, name := range names {
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("load custom rules: %w", err)
		}
		docs = append(docs, splitDocuments(path, data)...)
	}
	c, err := load(ctx, docs)
	if err != nil {
		return nil, fmt.Errorf("load custom rules from %s: %w", dir, err)
	}
	return c, nil
}

// FromObjects builds CustomRules from objects already in memory, such as
// Export's; source names them in errors.
func FromObjects(ctx context.Context, source string, objs []*unstructured.Unstructured) (*CustomRules, error) {
	docs := make([]*document, len(objs))
	for i, o := range objs {
		docs[i] = &document{file: source, index: i + 1, obj: o.DeepCopy()}
	}
	c, err := load(ctx, docs)
	if err != nil {
		return nil, fmt.Errorf("load custom rules: %w", err)
	}
	return c, nil
}

// newClient builds the framework client the way Gatekeeper's webhook
// does. Driver order matters: a template carrying both engines runs on
// the first driver registered only, and Gatekeeper prefers CEL.
func newClient() (*constraintclient.Client, error) {
	celDriver, err := k8scel.New()
	if err != nil {
		return nil, fmt.Errorf("create CEL driver: %w", err)
	}
	regoDriver, err := rego.New()
	if err != nil {
		return nil, fmt.Errorf("create Rego driver: %w", err)
	}
	c, err := constraintclient.NewClient(
		constraintclient.Targets(&target.K8sValidationTarget{}),
		constraintclient.Driver(celDriver),
		constraintclient.Driver(regoDriver),
		constraintclient.EnforcementPoints(webhookEnforcementPoint),
	)
	if err != nil {
		return nil, fmt.Errorf("create constraint client: %w", err)
	}
	return c, nil
}

func load(ctx context.Context, docs []*document) (*CustomRules, error) {
	client, err := newClient()
	if err != nil {
		return nil, err
	}
	c := &CustomRules{client: client, expansion: expansion.NewSystem(nil)}
	var errs []error
	var templateDocs, constraintDocs, expansionDocs []*document
	for _, d := range docs {
		if d.obj == nil {
			if err := d.decode(); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		switch gvk := d.obj.GroupVersionKind(); {
		case gvk.Group == templatesGroup && gvk.Kind == "ConstraintTemplate":
			templateDocs = append(templateDocs, d)
		case gvk.Group == constraintsGroup:
			constraintDocs = append(constraintDocs, d)
		case gvk.Group == expansionGroup && gvk.Kind == "ExpansionTemplate":
			expansionDocs = append(expansionDocs, d)
		default:
			errs = append(errs, d.errorf("unsupported kind %s (want a %s ConstraintTemplate, a %s constraint or a %s ExpansionTemplate)",
				gvk.GroupKind(), templatesGroup, constraintsGroup, expansionGroup))
		}
	}
	// Templates first, wherever they are: a constraint needs its template.
	templateAt := map[string]string{}
	failedKinds := map[string]bool{}
	for _, d := range templateDocs {
		kind, err := c.addTemplate(ctx, d, templateAt)
		if err != nil {
			errs = append(errs, err)
			if kind != "" {
				failedKinds[kind] = true
			}
		}
	}
	constraintAt := map[string]string{}
	for _, d := range constraintDocs {
		if failedKinds[d.obj.GetKind()] {
			continue // its template's error says it all
		}
		if err := c.addConstraint(ctx, d, templateAt, constraintAt); err != nil {
			errs = append(errs, err)
		}
	}
	expansionAt := map[string]string{}
	for _, d := range expansionDocs {
		if err := c.addExpansion(d, expansionAt); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// addTemplate returns the template's constraint kind, if it got that far.
func (c *CustomRules) addTemplate(ctx context.Context, d *document, seen map[string]string) (string, error) {
	t, err := toTemplate(d.obj)
	if err != nil {
		// The kind, if readable, still silences its constraints' echoes.
		kind, _, _ := unstructured.NestedString(d.obj.Object, "spec", "crd", "spec", "names", "kind")
		return kind, d.errorf("%v", err)
	}
	kind := t.Spec.CRD.Spec.Names.Kind
	if first, dup := seen[kind]; dup {
		return "", d.errorf("a second template for kind %s (first: %s)", kind, first)
	}
	if err := probeCEL(t); err != nil {
		return kind, d.errorf("CEL does not compile: %v", err)
	}
	if _, err := c.client.AddTemplate(ctx, t); err != nil {
		return kind, d.errorf("%v", err)
	}
	seen[kind] = d.where()
	return kind, nil
}

func (c *CustomRules) addConstraint(ctx context.Context, d *document, templates, seen map[string]string) error {
	kind, name := d.obj.GetKind(), d.obj.GetName()
	if _, ok := templates[kind]; !ok {
		return d.errorf("no ConstraintTemplate defines kind %s", kind)
	}
	key := kind + "/" + name
	if first, dup := seen[key]; dup {
		return d.errorf("a second constraint %s (first: %s)", key, first)
	}
	if _, err := c.client.AddConstraint(ctx, d.obj); err != nil {
		return d.errorf("%v", err)
	}
	seen[key] = d.where()
	c.constraints++
	return nil
}

func (c *CustomRules) addExpansion(d *document, seen map[string]string) error {
	et, err := toExpansion(d.obj)
	if err != nil {
		return d.errorf("%v", err)
	}
	if first, dup := seen[et.Name]; dup {
		return d.errorf("a second ExpansionTemplate %s (first: %s)", et.Name, first)
	}
	if err := expansion.ValidateTemplate(et); err != nil {
		return d.errorf("%v", err)
	}
	if err := c.expansion.UpsertTemplate(et); err != nil {
		return d.errorf("%v", err)
	}
	seen[et.Name] = d.where()
	c.expansions++
	return nil
}
