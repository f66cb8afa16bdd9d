package gatekeeper

import (
	"errors"
	"fmt"

	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	celschema "github.com/open-policy-agent/gatekeeper/v3/pkg/drivers/k8scel/schema"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/drivers/k8scel/transform"
	"k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/cel/environment"
)

// probeCEL compiles a template's CEL code the way Gatekeeper's k8scel
// driver does, and returns what fails to compile. The driver's AddTemplate
// swallows compile errors and the broken expression then denies every
// request it matches (failurePolicy Fail) with a message no author sees at
// load time; probing turns that into a load error naming the expression.
func probeCEL(ct *templates.ConstraintTemplate) error {
	if !celschema.HasCELEngine(ct) {
		return nil
	}
	source, err := celschema.GetSourceFromTemplate(ct)
	if err != nil {
		return fmt.Errorf("read %s source: %w", celschema.Name, err)
	}
	if err := source.Validate(); err != nil {
		return fmt.Errorf("invalid %s source: %w", celschema.Name, err)
	}
	compiler, err := cel.NewCompositedCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	if err != nil {
		return fmt.Errorf("create CEL compiler: %w", err)
	}
	// Same declarations as the driver: variables see the constraint's
	// parameters, conditions and messages see only the variables.
	withParams := cel.OptionalVariableDeclarations{HasParams: true}
	plain := cel.OptionalVariableDeclarations{}
	const mode = environment.StoredExpressions
	var errs []error
	check := func(what string, r cel.CompilationResult) {
		if r.Error != nil {
			errs = append(errs, fmt.Errorf("%s %q: %s", what, r.ExpressionAccessor.GetExpression(), r.Error.Detail))
		}
	}
	for _, v := range transform.AllVariablesCEL() {
		check("built-in variable "+v.GetName(), compiler.CompileAndStoreVariable(v, withParams, mode))
	}
	vars, err := source.GetVariables()
	if err != nil {
		return fmt.Errorf("read variables: %w", err)
	}
	for _, v := range vars {
		check("variables."+v.GetName(), compiler.CompileAndStoreVariable(v, withParams, mode))
	}
	matches, err := source.GetMatchConditions()
	if err != nil {
		return fmt.Errorf("read matchConditions: %w", err)
	}
	for i, m := range matches {
		check(fmt.Sprintf("matchConditions[%d]", i), compiler.CompileCELExpression(m, plain, mode))
	}
	validations, err := source.GetValidations()
	if err != nil {
		return fmt.Errorf("read validations: %w", err)
	}
	for i, v := range validations {
		check(fmt.Sprintf("validations[%d].expression", i), compiler.CompileCELExpression(v, plain, mode))
	}
	messages, err := source.GetMessageExpressions()
	if err != nil {
		return fmt.Errorf("read messageExpressions: %w", err)
	}
	for i, m := range messages {
		if m == nil {
			continue // this validation has a fixed message
		}
		check(fmt.Sprintf("validations[%d].messageExpression", i), compiler.CompileCELExpression(m, plain, mode))
	}
	return errors.Join(errs...)
}
