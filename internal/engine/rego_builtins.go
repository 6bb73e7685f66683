package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/match"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"
)

// Go builtins offered to policies for the matching that is slow in Rego.
//
//	kickagent.in_networks(ip, networks) → bool
//	    ip is an address string ("" → false, e.g. a session without IP);
//	    networks is a CIDR string or an array or set of them ("10.0.0.0/8",
//	    "2001:db8::/32", or a bare address for one host). One map lookup
//	    per distinct prefix length, however long the list: a Rego loop of
//	    net.cidr_contains costs ~1 µs per session×CIDR pair
//	    (opa-performance.md §1d). IPv4-mapped IPv6 clients count as IPv4.
//
//	kickagent.user_match(masks, user) → bool
//	    masks is a user mask or an array or set of them, with doveadm
//	    semantics: '*' and '?' wildcards, ASCII case-insensitive, no
//	    delimiters. Masks without wildcards are one map lookup. Unlike
//	    glob.match it needs no lower() and has no '.' delimiter trap.
//
// A list is compiled (netip prefixes, mask sets) the first time a builtin
// sees it and kept for the Policy's lifetime, found again by the identity
// of the list value (a policy constant is the same value every call) or
// else by its content.
//
// Unlike OPA's own builtins, these never fail silently: an invalid CIDR,
// an empty mask or a non-string element is a builtin error, and besides
// OPA's handling (undefined unless rego.StrictBuiltinErrors) it is
// recorded so that Evaluate returns it: a typo in a blocked list fails the
// evaluation loudly instead of never matching.

const (
	builtinInNetworks = "kickagent.in_networks"
	builtinUserMatch  = "kickagent.user_match"
)

// regoListType is the argument type "string, or array or set of strings".
var regoListType = types.NewAny(types.S, types.NewArray(nil, types.S), types.NewSet(types.S))

var (
	inNetworksDecl = &rego.Function{
		Name:        builtinInNetworks,
		Description: "Reports whether the address ip is in one of the networks (CIDR string, array or set of CIDRs).",
		Decl: types.NewFunction(
			types.Args(types.Named("ip", types.S), types.Named("networks", regoListType)),
			types.Named("result", types.B),
		),
	}
	userMatchDecl = &rego.Function{
		Name:        builtinUserMatch,
		Description: "Reports whether user matches a mask (doveadm semantics: '*', '?', ASCII case-insensitive).",
		Decl: types.NewFunction(
			types.Args(types.Named("masks", regoListType), types.Named("user", types.S)),
			types.Named("result", types.B),
		),
	}
)

// builtins holds one policy's compiled-list caches.
type regoBuiltins struct {
	nets  regoListCache[match.NetworkSet]
	users regoListCache[match.MaskSet]
}

func newRegoBuiltins() *regoBuiltins {
	return &regoBuiltins{
		nets:  regoListCache[match.NetworkSet]{compile: regoCompileNetworks},
		users: regoListCache[match.MaskSet]{compile: regoCompileMasks},
	}
}

// regoFuncs is every builtin, in the order of options.
var regoFuncs = []*rego.Function{inNetworksDecl, userMatchDecl}

// options registers the builtins with a rego.Rego, in regoFuncs order.
func (b *regoBuiltins) options() []func(*rego.Rego) {
	return []func(*rego.Rego){
		rego.Function2(inNetworksDecl, b.inNetworks),
		rego.Function2(userMatchDecl, b.userMatch),
	}
}

// regoBuiltinDecls returns the declarations for a compiler's
// capabilities, in regoFuncs order.
func regoBuiltinDecls() []*ast.Builtin {
	var out []*ast.Builtin
	for _, f := range regoFuncs {
		out = append(out, &ast.Builtin{Name: f.Name, Description: f.Description, Decl: f.Decl})
	}
	return out
}

func (b *regoBuiltins) inNetworks(bctx rego.BuiltinContext, ipT, netsT *ast.Term) (*ast.Term, error) {
	s, ok := ipT.Value.(ast.String)
	if !ok {
		return nil, regoReport(bctx, builtinInNetworks, fmt.Errorf("ip: want string, got %s", ast.ValueName(ipT.Value)))
	}
	set, err := b.nets.get(netsT.Value)
	if err != nil {
		return nil, regoReport(bctx, builtinInNetworks, err)
	}
	if s == "" {
		return ast.InternedTerm(false), nil
	}
	ip, err := anvil.ParseAddr(string(s))
	if err != nil {
		return nil, regoReport(bctx, builtinInNetworks, fmt.Errorf("ip %q: not an address", string(s)))
	}
	return ast.InternedTerm(set.Contains(ip)), nil
}

func (b *regoBuiltins) userMatch(bctx rego.BuiltinContext, masksT, userT *ast.Term) (*ast.Term, error) {
	u, ok := userT.Value.(ast.String)
	if !ok {
		return nil, regoReport(bctx, builtinUserMatch, fmt.Errorf("user: want string, got %s", ast.ValueName(userT.Value)))
	}
	set, err := b.users.get(masksT.Value)
	if err != nil {
		return nil, regoReport(bctx, builtinUserMatch, err)
	}
	return ast.InternedTerm(set.Match(string(u))), nil
}

func regoCompileNetworks(v ast.Value) (match.NetworkSet, error) {
	strs, err := regoStrings(v)
	if err != nil {
		return match.NetworkSet{}, err
	}
	nets := make([]match.Network, 0, len(strs))
	for _, s := range strs {
		// The same parser as the YAML rules and who/kick arguments, so
		// both engines give the same answer for every literal.
		n, err := match.ParseNetwork(s)
		if err != nil {
			return match.NetworkSet{}, err
		}
		nets = append(nets, n)
	}
	return match.NewNetworkSet(nets), nil
}

func regoCompileMasks(v ast.Value) (match.MaskSet, error) {
	strs, err := regoStrings(v)
	if err != nil {
		return match.MaskSet{}, err
	}
	for _, s := range strs {
		if s == "" {
			return match.MaskSet{}, errors.New("empty user mask")
		}
	}
	return match.NewMaskSet(strs), nil
}

// regoStrings returns a string, or the elements of an array or set of
// strings.
func regoStrings(v ast.Value) ([]string, error) {
	var out []string
	add := func(t *ast.Term) error {
		s, ok := t.Value.(ast.String)
		if !ok {
			return fmt.Errorf("list element %v: want string", t)
		}
		out = append(out, string(s))
		return nil
	}
	switch x := v.(type) {
	case ast.String:
		return []string{string(x)}, nil
	case *ast.Array:
		out = make([]string, 0, x.Len())
		for i := range x.Len() {
			if err := add(x.Elem(i)); err != nil {
				return nil, err
			}
		}
	case ast.Set:
		out = make([]string, 0, x.Len())
		for _, t := range x.Slice() {
			if err := add(t); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("want string, array or set of strings, got %s", ast.ValueName(v))
	}
	return out, nil
}

// regoListCache keeps compiled lists. Lookup is first by identity (the same
// *ast.Array or set, as a policy constant is on every call), then by
// content (hash, then equality). Holding the value keeps its address from
// being reused. Lists computed per call (a comprehension per session)
// would fill it: it is emptied when it grows past maxListCache.
type regoListCache[T any] struct {
	compile func(ast.Value) (T, error)

	mu     sync.Mutex
	byID   map[ast.Value]*T
	byHash map[int][]regoCachedList[T]
	n      int
}

type regoCachedList[T any] struct {
	v ast.Value
	c *T
}

const maxListCache = 1024

func (c *regoListCache[T]) get(v ast.Value) (*T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.byID[v]; ok {
		return r, nil
	}
	h := v.Hash()
	for _, e := range c.byHash[h] {
		if e.v.Compare(v) == 0 {
			c.byID[v] = e.c
			return e.c, nil
		}
	}
	compiled, err := c.compile(v)
	if err != nil {
		return nil, err
	}
	if c.n >= maxListCache || c.byID == nil {
		c.byID = make(map[ast.Value]*T)
		c.byHash = make(map[int][]regoCachedList[T])
		c.n = 0
	}
	c.n++
	c.byID[v] = &compiled
	c.byHash[h] = append(c.byHash[h], regoCachedList[T]{v: v, c: &compiled})
	return &compiled, nil
}

// regoBuiltinErrs collects the errors of our builtins during one Evaluate; it
// travels in the evaluation's context.
type regoBuiltinErrs struct {
	mu   sync.Mutex
	errs []error
}

type regoErrsKey struct{}

func withRegoBuiltinErrs(ctx context.Context) (context.Context, *regoBuiltinErrs) {
	be := &regoBuiltinErrs{}
	return context.WithValue(ctx, regoErrsKey{}, be), be
}

// regoReport records err of builtin name for Evaluate (at most a few,
// with the policy location) and returns it for OPA, which adds the name
// and location itself.
func regoReport(bctx rego.BuiltinContext, name string, err error) error {
	if bctx.Context == nil {
		return err
	}
	be, ok := bctx.Context.Value(regoErrsKey{}).(*regoBuiltinErrs)
	if !ok {
		return err
	}
	located := fmt.Errorf("%s: %w", name, err)
	if bctx.Location != nil {
		located = fmt.Errorf("%s:%d: %s: %w", bctx.Location.File, bctx.Location.Row, name, err)
	}
	be.mu.Lock()
	if len(be.errs) < 5 {
		be.errs = append(be.errs, located)
	}
	be.mu.Unlock()
	return err
}

func (be *regoBuiltinErrs) err() error {
	be.mu.Lock()
	defer be.mu.Unlock()
	return errors.Join(be.errs...)
}
