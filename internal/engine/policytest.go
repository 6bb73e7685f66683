package engine

import (
	"context"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// RunPolicyTests runs the Rego unit tests (test_* rules, usually in
// *_test.rego files) found with the policy in paths, through OPA's tester
// as "opa test" does, with the kickagent builtins available. The policy
// must first load as LoadPolicy loads it (package, strict compile), and the
// tests compile in strict mode too. Unlike a default "opa test", builtin
// errors (a bad CIDR in net.cidr_contains …) fail the test instead of
// being silently undefined. run, if not empty, is a regular expression
// selecting tests by name (opa test --run).
//
// The results arrive on the channel, which is closed at the end; the
// policy's load and compile errors are returned as Errors.
func RunPolicyTests(ctx context.Context, paths []string, run string) (<-chan *tester.Result, error) {
	if _, err := LoadPolicy(ctx, paths); err != nil {
		return nil, err
	}
	files, errs := policyFiles(paths, true)
	if len(errs) > 0 {
		return nil, errs
	}
	modules, _, errs := parsePolicyFiles(files)
	if len(errs) > 0 {
		return nil, errs
	}
	byName := make(map[string]*ast.Module, len(modules))
	for i, m := range modules {
		byName[files[i]] = m
	}

	compiler := ast.NewCompiler().
		WithCapabilities(regoCapabilities()). // the agent's sandbox
		WithStrict(true).
		WithEnablePrintStatements(true).
		WithDefaultRegoVersion(ast.RegoV1)

	decls, funcs := regoBuiltinDecls(), newRegoBuiltins().options()
	custom := make([]*tester.Builtin, len(decls))
	for i := range decls {
		custom[i] = &tester.Builtin{Decl: decls[i], Func: funcs[i]}
	}

	store := inmem.New()
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return nil, err
	}
	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		SetModules(byName).
		AddCustomBuiltins(custom).
		CapturePrintOutput(true).
		RaiseBuiltinErrors(true).
		Filter(run)
	ch, err := runner.RunTests(ctx, txn)
	if err != nil {
		store.Abort(ctx, txn)
		return nil, explainDenied(astErrors(err, files[0]))
	}
	out := make(chan *tester.Result)
	go func() {
		defer close(out)
		defer store.Abort(ctx, txn)
		for r := range ch {
			out <- r
		}
	}()
	return out, nil
}
