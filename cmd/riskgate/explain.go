package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/riskgate/riskgate/policy"
	"github.com/riskgate/riskgate/riskcache"
)

// whatIf is a hypothetical request, from the explain command's flags or the
// admin /explain endpoint's query.
type whatIf struct {
	URL       string
	User      string
	Groups    []string
	Device    string
	Risk      string // empty: from the live cache (admin) or unknown (CLI)
	Platform  string
	OSVersion string
	Owner     string // empty: the user
	Stale     bool
}

// explanation is what explain prints: the route and the policy verdicts.
type explanation struct {
	Route string `json:"route"`
	policy.Explanation
	Device string `json:"device_id,omitempty"`
	Risk   string `json:"risk"`
}

// explainRequest decides w against set, taking the device's risk from
// lookup when w does not give it.
func explainRequest(set *policy.Set, w whatIf, lookup func(string) riskcache.Risk, now time.Time) (*explanation, error) {
	if w.URL == "" || w.User == "" {
		return nil, errors.New("url and user are required")
	}
	u, err := url.Parse(w.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("url %q: want an absolute URL such as https://mail.corp.example/owa", w.URL)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	route, ok := set.Route(u.Hostname(), path)
	if !ok {
		return nil, fmt.Errorf("no route matches %s (the proxy answers 404)", w.URL)
	}
	f := policy.Facts{
		Now: now, Route: route.Name, User: w.User, Groups: w.Groups, DeviceID: w.Device,
		Platform: strings.ToLower(w.Platform), OSVersion: w.OSVersion, Stale: w.Stale,
		Owner: w.User, RiskSince: now.Add(-24 * 365 * time.Hour),
	}
	if w.Owner != "" {
		f.Owner = w.Owner
	}
	switch {
	case w.Risk != "":
		lvl, err := policy.ParseLevel(w.Risk)
		if err != nil {
			return nil, err
		}
		f.Risk = lvl
	case w.Device != "" && lookup != nil:
		r := lookup(w.Device)
		if r.Known {
			f.Risk, f.Stale, f.Vendor, f.Owner = r.Level, r.Stale || w.Stale, r.Vendor, r.Owner
			f.RiskSince = r.Since
			if w.Platform == "" {
				f.Platform = r.Platform
			}
			if w.OSVersion == "" {
				f.OSVersion = r.OSVersion
			}
			if w.Owner != "" {
				f.Owner = w.Owner
			}
		}
	}
	ex := set.Explain(&f)
	return &explanation{Route: route.Name, Explanation: ex, Device: w.Device, Risk: f.Risk.String()}, nil
}

// printExplanation writes the human form.
func printExplanation(w io.Writer, ex *explanation) {
	d := ex.Decision
	decision := "block"
	if d.Allow {
		decision = "allow"
		if d.ReportOnly > 0 {
			decision = "allow (report-only policies would block)"
		}
	}
	fmt.Fprintf(w, "decision: %s\nreason:   %s\n", decision, d.Reason)
	if d.Policy != "" {
		fmt.Fprintf(w, "policy:   %s\n", d.Policy)
	}
	fmt.Fprintf(w, "route:    %s\nrisk:     %s\n\npolicies:\n", ex.Route, ex.Risk)
	if len(ex.Policies) == 0 {
		fmt.Fprintln(w, "  (none configured)")
	}
	for _, p := range ex.Policies {
		switch {
		case !p.Applied:
			fmt.Fprintf(w, "  %-24s %-12s not applied: %s\n", p.Name, p.Mode, p.NotApplied)
		case p.Pass:
			fmt.Fprintf(w, "  %-24s %-12s applied: pass (%s)\n", p.Name, p.Mode, p.Detail)
		default:
			fmt.Fprintf(w, "  %-24s %-12s applied: FAIL %s (%s)\n", p.Name, p.Mode, p.Reason, p.Detail)
		}
	}
}

// explain is `riskgate explain`: a what-if decision from the config file.
func explain(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (required)")
	var w whatIf
	var groups string
	fs.StringVar(&w.URL, "url", "", "request URL, e.g. https://mail.corp.example/owa (required)")
	fs.StringVar(&w.User, "user", "", "user, as auth.user_claim gives it (required)")
	fs.StringVar(&groups, "groups", "", "comma-separated groups")
	fs.StringVar(&w.Device, "device", "", "device id (empty: no device)")
	fs.StringVar(&w.Risk, "risk", "", "device risk: secured, low, medium, high (empty: unknown)")
	fs.StringVar(&w.Platform, "platform", "", "device platform: ios, android, windows, macos")
	fs.StringVar(&w.OSVersion, "os-version", "", "device OS version")
	fs.StringVar(&w.Owner, "owner", "", "device owner at the vendor (default: the user)")
	fs.BoolVar(&w.Stale, "stale", false, "the vendor's data is stale")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if *path == "" || w.URL == "" || w.User == "" {
		fmt.Fprintln(stderr, "riskgate explain: --config, --url and --user are required")
		return exitError(2)
	}
	w.Groups = splitList(groups)
	_, set, err := loadConfig(*path, getenv)
	if err != nil {
		printConfigErrors(stderr, *path, err)
		return exitError(1)
	}
	ex, err := explainRequest(set, w, nil, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "riskgate explain: %v\n", err)
		return exitError(1)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false) // details compare with "<" and ">"
		return enc.Encode(ex)
	}
	printExplanation(stdout, ex)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// explainHandler is the admin listener's GET /explain: the same what-if
// against the running config, with the device's risk from the live cache
// unless the query gives it. JSON unless the client asks for text/plain.
func explainHandler(g *gateway) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		w := whatIf{
			URL: q.Get("url"), User: q.Get("user"), Groups: splitList(q.Get("groups")),
			Device: q.Get("device"), Risk: q.Get("risk"), Platform: q.Get("platform"),
			OSVersion: q.Get("os_version"), Owner: q.Get("owner"), Stale: q.Get("stale") == "true",
		}
		snap := g.proxy.Snapshot()
		if snap == nil {
			http.Error(rw, "no configuration loaded", http.StatusServiceUnavailable)
			return
		}
		ex, err := explainRequest(snap.Policy(), w, g.cache.Lookup, g.now())
		if err != nil {
			rw.Header().Set("Content-Type", "application/json")
			rw.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(rw).Encode(map[string]string{"error": err.Error()})
			return
		}
		if strings.Contains(r.Header.Get("Accept"), "text/plain") {
			rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
			printExplanation(rw, ex)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(rw)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		_ = enc.Encode(ex)
	})
}
