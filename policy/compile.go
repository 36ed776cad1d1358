package policy

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Set is a compiled, immutable configuration: what a request is routed and
// decided against. A reload compiles a new Set and swaps it in atomically; a
// Set is safe for concurrent use.
type Set struct {
	cfg      *Config
	routes   []*CompiledRoute
	byHost   map[string][]*CompiledRoute // lower-case host -> longest prefix first
	anyHost  []*CompiledRoute            // host "" or "*", longest prefix first
	policies []*CompiledPolicy
	// groupIDs numbers every group named by a policy (lower case), so that
	// a request's groups are looked up once, not once per policy. With more
	// than maxGroupBits groups the policies' foldSets answer instead.
	groupIDs   map[string]int
	groupNames []string
}

// maxGroupBits is how many distinct groups the per-request group bitmap
// holds (it lives on the stack: Evaluate allocates nothing).
const maxGroupBits = 256

type groupBits [maxGroupBits / 64]uint64

func (b *groupBits) set(i int) { b[i/64] |= 1 << (i % 64) }

func (b *groupBits) intersects(o *groupBits) bool {
	return b[0]&o[0] != 0 || b[1]&o[1] != 0 || b[2]&o[2] != 0 || b[3]&o[3] != 0
}

// CompiledRoute is a route ready for matching and forwarding.
type CompiledRoute struct {
	// Name and DisplayName as configured (DisplayName defaults to Name).
	Name        string
	DisplayName string
	// Host is lower case; empty matches any host.
	Host       string
	PathPrefix string
	// Upstream is the parsed upstream URL; treat it as read-only.
	Upstream *url.URL
	// Index is the route's position in the configuration.
	Index int
}

// CompiledPolicy is a policy ready for evaluation.
type CompiledPolicy struct {
	// Name and Mode as configured.
	Name string
	Mode Mode
	// Index is the policy's position in the configuration (and its bit in
	// Decision.Applied and Decision.Failed).
	Index int

	routes         []string
	groups         foldSet
	groupMask      groupBits
	excludeMask    groupBits
	platforms      foldSet
	exclude        foldSet
	blockPlatforms foldSet
	minOS          map[string]string // lower-case platform -> version
	maxRisk        Level
	requireDevice  bool
	requireOwner   bool
	allowUnknown   bool
	allowStale     bool
	grace          time.Duration
}

// Compile builds the Set of a configuration returned by Parse or Load. It
// re-checks what it relies on (levels, URLs, modes), so that a Config built
// by hand fails here rather than misbehaving; unset fields take the
// documented defaults.
func Compile(cfg *Config) (*Set, error) {
	if cfg == nil {
		return nil, errors.New("policy: compile: nil config")
	}
	if len(cfg.Policies) > MaxPolicies {
		return nil, fmt.Errorf("policy: compile: %d policies, at most %d", len(cfg.Policies), MaxPolicies)
	}
	s := &Set{cfg: cfg, byHost: map[string][]*CompiledRoute{}}
	for i, r := range cfg.Routes {
		u, err := url.Parse(r.Upstream)
		if err != nil || checkURL(r.Upstream) != nil {
			return nil, fmt.Errorf("policy: compile: route %q: bad upstream %q", r.Name, r.Upstream)
		}
		cr := &CompiledRoute{
			Name:        r.Name,
			DisplayName: cmp.Or(r.DisplayName, r.Name),
			Host:        normHost(r.Host),
			PathPrefix:  cmp.Or(r.PathPrefix, "/"),
			Upstream:    u,
			Index:       i,
		}
		s.routes = append(s.routes, cr)
		if cr.Host == "" {
			s.anyHost = append(s.anyHost, cr)
		} else {
			s.byHost[cr.Host] = append(s.byHost[cr.Host], cr)
		}
	}
	longestFirst := func(a, b *CompiledRoute) int {
		return cmp.Or(cmp.Compare(len(b.PathPrefix), len(a.PathPrefix)), cmp.Compare(a.Index, b.Index))
	}
	slices.SortFunc(s.anyHost, longestFirst)
	for _, rs := range s.byHost {
		slices.SortFunc(rs, longestFirst)
	}

	s.groupIDs = map[string]int{}
	for _, p := range cfg.Policies {
		for _, g := range slices.Concat(p.Groups, p.ExcludeGroups) {
			g = strings.ToLower(g)
			if _, ok := s.groupIDs[g]; !ok {
				s.groupIDs[g] = len(s.groupNames)
				s.groupNames = append(s.groupNames, g)
			}
		}
	}
	if len(s.groupNames) > maxGroupBits {
		s.groupIDs, s.groupNames = nil, nil
	}

	for i, p := range cfg.Policies {
		maxRisk, err := ParseLevel(cmp.Or(p.MaxRisk, "low"))
		if err != nil || maxRisk == LevelUnknown {
			return nil, fmt.Errorf("policy: compile: policy %q: bad max_risk %q", p.Name, p.MaxRisk)
		}
		mode := cmp.Or(p.Mode, ModeEnforce)
		if mode != ModeEnforce && mode != ModeReportOnly {
			return nil, fmt.Errorf("policy: compile: policy %q: bad mode %q", p.Name, p.Mode)
		}
		cp := &CompiledPolicy{
			Name:           p.Name,
			Mode:           mode,
			Index:          i,
			routes:         slices.Clone(p.Routes),
			groups:         newFoldSet(p.Groups),
			platforms:      newFoldSet(p.Platforms),
			exclude:        newFoldSet(p.ExcludeGroups),
			blockPlatforms: newFoldSet(p.BlockPlatforms),
			maxRisk:        maxRisk,
			requireDevice:  p.RequireDevice == nil || *p.RequireDevice,
			requireOwner:   p.RequireOwnerMatch == nil || *p.RequireOwnerMatch,
			allowUnknown:   p.OnUnknown == ActionAllow,
			allowStale:     p.OnStale == ActionAllow,
			grace:          p.GracePeriod.Duration,
		}
		if s.groupIDs != nil {
			for _, g := range p.Groups {
				cp.groupMask.set(s.groupIDs[strings.ToLower(g)])
			}
			for _, g := range p.ExcludeGroups {
				cp.excludeMask.set(s.groupIDs[strings.ToLower(g)])
			}
		}
		if len(p.MinOS) > 0 {
			cp.minOS = make(map[string]string, len(p.MinOS))
			for plat, v := range p.MinOS {
				cp.minOS[strings.ToLower(plat)] = v
			}
		}
		s.policies = append(s.policies, cp)
	}
	return s, nil
}

// Config returns the configuration the Set was compiled from. It must not
// be modified.
func (s *Set) Config() *Config { return s.cfg }

// Routes returns the routes in configuration order. The slice must not be
// modified.
func (s *Set) Routes() []*CompiledRoute { return s.routes }

// Policies returns the policies in configuration order. The slice must not
// be modified.
func (s *Set) Policies() []*CompiledPolicy { return s.policies }

// Route finds the route for a request's host (a port is ignored, case is
// not significant) and path (case is not significant either, see
// prefixMatch). A route for the exact host beats one for any
// host; among those, the longest matching path_prefix wins. A prefix
// matches at a path segment boundary: "/mail" matches "/mail" and
// "/mail/x" but not "/mailbox" (a prefix ending in "/" matches everything
// below it).
func (s *Set) Route(host, path string) (*CompiledRoute, bool) {
	if path == "" {
		path = "/"
	}
	host = stripPort(host)
	if len(s.byHost) > 0 && host != "" {
		var rs []*CompiledRoute
		var buf [256]byte
		if isLowerASCII(host) {
			rs = s.byHost[host]
		} else if len(host) <= len(buf) {
			rs = s.byHost[string(lowerASCII(buf[:0], host))] // no allocation
		} else {
			rs = s.byHost[strings.ToLower(host)]
		}
		if r := matchPrefix(rs, path); r != nil {
			return r, true
		}
	}
	if r := matchPrefix(s.anyHost, path); r != nil {
		return r, true
	}
	return nil, false
}

func matchPrefix(rs []*CompiledRoute, path string) *CompiledRoute {
	for _, r := range rs {
		if prefixMatch(r.PathPrefix, path) {
			return r
		}
	}
	return nil
}

// prefixMatch compares case-insensitively: Exchange and SharePoint run on
// IIS, whose paths are case-insensitive, so "/ECP" must not slip past a
// policy for "/ecp" into a laxer route.
func prefixMatch(prefix, path string) bool {
	if len(path) < len(prefix) || !strings.EqualFold(path[:len(prefix)], prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// stripPort removes a port and a trailing dot from a Host header value.
func stripPort(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[:i+1]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		h = h[:i]
	}
	return strings.TrimSuffix(h, ".")
}

func isLowerASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' || c >= 0x80 {
			return false
		}
	}
	return true
}

func lowerASCII(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// userGroups maps a request's groups to the bitmap of the policy groups
// they are, case-insensitively and without allocating. ok is false when the
// configuration has too many groups for the bitmap.
func (s *Set) userGroups(groups []string) (b groupBits, ok bool) {
	if s.groupIDs == nil {
		return b, false
	}
	if len(s.groupIDs) == 0 {
		return b, true
	}
	var buf [256]byte
	for _, g := range groups {
		switch {
		case isLowerASCII(g):
			if id, found := s.groupIDs[g]; found {
				b.set(id)
			}
		case isASCII(g) && len(g) <= len(buf):
			if id, found := s.groupIDs[string(lowerASCII(buf[:0], g))]; found {
				b.set(id)
			}
		default:
			for id, name := range s.groupNames {
				if strings.EqualFold(name, g) {
					b.set(id)
				}
			}
		}
	}
	return b, true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// foldSet is a case-insensitive set of strings that answers without
// allocating: lower-case ASCII queries hit the map, others are compared
// with strings.EqualFold.
type foldSet struct {
	list  []string // as configured, for messages
	lower map[string]struct{}
}

func newFoldSet(list []string) foldSet {
	s := foldSet{list: slices.Clone(list)}
	if len(list) > 0 {
		s.lower = make(map[string]struct{}, len(list))
		for _, e := range list {
			s.lower[strings.ToLower(e)] = struct{}{}
		}
	}
	return s
}

func (s foldSet) empty() bool { return len(s.list) == 0 }

func (s foldSet) has(x string) bool {
	if len(s.list) == 0 {
		return false
	}
	if isLowerASCII(x) {
		_, ok := s.lower[x]
		return ok
	}
	for _, e := range s.list {
		if strings.EqualFold(e, x) {
			return true
		}
	}
	return false
}

// find returns the configured spelling of the first of xs in the set.
func (s foldSet) find(xs []string) (string, bool) {
	for _, x := range xs {
		for _, e := range s.list {
			if strings.EqualFold(e, x) {
				return e, true
			}
		}
	}
	return "", false
}

func (s foldSet) hasAny(xs []string) bool {
	for _, x := range xs {
		if s.has(x) {
			return true
		}
	}
	return false
}

// MaxRisk is the highest level the policy lets through.
func (p *CompiledPolicy) MaxRisk() Level { return p.maxRisk }

// MinOS is the policy's minimum OS version for platform, or "".
func (p *CompiledPolicy) MinOS(platform string) string {
	v, _ := p.minOSFor(platform)
	return v
}

// Policy returns the compiled policy called name.
func (s *Set) Policy(name string) (*CompiledPolicy, bool) {
	for _, p := range s.policies {
		if p.Name == name {
			return p, true
		}
	}
	return nil, false
}
