package policy

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const evalConfig = `
auth: {issuer: "https://idp.example.com", client_id: rg}
routes:
  - {name: mail, host: mail.corp.example, upstream: "http://mail.internal"}
  - {name: docs, path_prefix: /docs, upstream: "http://docs.internal"}
  - {name: open, path_prefix: /open, upstream: "http://open.internal"}
  - {name: hi, path_prefix: /hi, upstream: "http://hi.internal"}
  - {name: wiki, path_prefix: /wiki, upstream: "http://wiki.internal"}
  - {name: bare, path_prefix: /bare, upstream: "http://bare.internal"}
policies:
  - name: mobile-risk
    routes: [mail]
    exclude_groups: [breakglass]
    max_risk: low
    min_os: {iOS: "16.0", android: "12"}
    block_platforms: [blackberry]
    grace_period: 1h
  - name: mail-breakglass
    routes: [mail]
    groups: [breakglass]
    max_risk: high
    require_owner_match: false
  - name: docs-ios
    routes: [docs]
    groups: [Sales]
    platforms: [iOS]
    max_risk: medium
  - name: docs-trial
    mode: report-only
    routes: [docs]
    max_risk: secured
  - name: open
    routes: [open]
    require_device: false
    require_owner_match: false
    on_unknown: allow
    on_stale: allow
    min_os: {ios: "16"}
  - name: hi
    routes: [hi]
    max_risk: high
  - name: wiki-trial
    mode: report-only
    routes: [wiki]
    exclude_groups: [contractors]
`

var now = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func mustSet(t testing.TB, yaml string) *Set {
	t.Helper()
	cfg, err := Parse("test.yaml", []byte(yaml), testEnv)
	require.NoError(t, err)
	s, err := Compile(cfg)
	require.NoError(t, err)
	return s
}

// facts is alice on mail with a known, secured, owned iPhone on iOS 17.
func facts(route string, edit func(f *Facts)) *Facts {
	f := &Facts{
		Now: now, Route: route, User: "alice@corp.example", Groups: []string{"staff"},
		DeviceID: "d-1", Risk: LevelSecured, RiskSince: now.Add(-48 * time.Hour),
		Vendor: "acme", Owner: "alice@corp.example", Platform: "ios", OSVersion: "17.0",
	}
	if edit != nil {
		edit(f)
	}
	return f
}

func TestEvaluate(t *testing.T) {
	s := mustSet(t, evalConfig)
	tests := []struct {
		name       string
		facts      *Facts
		allow      bool
		reason     Reason
		policy     string
		reportOnly []string
		roReason   Reason
	}{
		{"allowed", facts("mail", nil), true, ReasonAllowed, "mobile-risk", nil, ""},
		{"risk at max", facts("mail", func(f *Facts) { f.Risk = LevelLow }), true, ReasonAllowed, "mobile-risk", nil, ""},
		{"risk_too_high", facts("mail", func(f *Facts) { f.Risk = LevelMedium }), false, ReasonRiskTooHigh, "mobile-risk", nil, ""},
		{"within grace", facts("mail", func(f *Facts) { f.Risk = LevelHigh; f.RiskSince = now.Add(-30 * time.Minute) }), true, ReasonAllowed, "mobile-risk", nil, ""},
		{"grace over", facts("mail", func(f *Facts) { f.Risk = LevelHigh; f.RiskSince = now.Add(-time.Hour) }), false, ReasonRiskTooHigh, "mobile-risk", nil, ""},
		{"device_unknown", facts("mail", func(f *Facts) { f.Risk = LevelUnknown }), false, ReasonDeviceUnknown, "mobile-risk", nil, ""},
		{"risk_stale", facts("mail", func(f *Facts) { f.Stale = true }), false, ReasonRiskStale, "mobile-risk", nil, ""},
		{"device_missing", facts("mail", func(f *Facts) { f.DeviceID = "" }), false, ReasonDeviceMissing, "mobile-risk", nil, ""},
		{"device_not_owned", facts("mail", func(f *Facts) { f.Owner = "bob@corp.example" }), false, ReasonDeviceNotOwned, "mobile-risk", nil, ""},
		{"owner case-insensitive", facts("mail", func(f *Facts) { f.Owner = "Alice@Corp.Example" }), true, ReasonAllowed, "mobile-risk", nil, ""},
		{"trusted id without owner", facts("mail", func(f *Facts) { f.Owner = "" }), true, ReasonAllowed, "mobile-risk", nil, ""},
		{"self-asserted without owner", facts("mail", func(f *Facts) { f.Owner = ""; f.SelfAsserted = true }), false, ReasonDeviceNotOwned, "mobile-risk", nil, ""},
		{"self-asserted owned", facts("mail", func(f *Facts) { f.SelfAsserted = true }), true, ReasonAllowed, "mobile-risk", nil, ""},
		{"owner before stale", facts("mail", func(f *Facts) { f.Owner = "bob"; f.Stale = true }), false, ReasonDeviceNotOwned, "mobile-risk", nil, ""},
		{"platform_blocked", facts("mail", func(f *Facts) { f.Platform = "BlackBerry" }), false, ReasonPlatformBlocked, "mobile-risk", nil, ""},
		{"os_too_old", facts("mail", func(f *Facts) { f.OSVersion = "15.8.1" }), false, ReasonOSTooOld, "mobile-risk", nil, ""},
		{"os version missing", facts("mail", func(f *Facts) { f.OSVersion = "" }), false, ReasonOSTooOld, "mobile-risk", nil, ""},
		{"os with suffix", facts("mail", func(f *Facts) { f.OSVersion = "16.0 (20A362)" }), true, ReasonAllowed, "mobile-risk", nil, ""},
		{"android at min", facts("mail", func(f *Facts) { f.Platform = "android"; f.OSVersion = "12.0" }), true, ReasonAllowed, "mobile-risk", nil, ""},
		{"no min_os for platform", facts("mail", func(f *Facts) { f.Platform = "windows"; f.OSVersion = "" }), true, ReasonAllowed, "mobile-risk", nil, ""},
		{"os before risk", facts("mail", func(f *Facts) { f.OSVersion = "15"; f.Risk = LevelHigh }), false, ReasonOSTooOld, "mobile-risk", nil, ""},
		{"excluded, other policy applies", facts("mail", func(f *Facts) { f.Groups = []string{"BreakGlass"}; f.Risk = LevelHigh; f.Owner = "bob" }), true, ReasonAllowed, "mail-breakglass", nil, ""},
		{"breakglass still needs known device", facts("mail", func(f *Facts) { f.Groups = []string{"breakglass"}; f.Risk = LevelUnknown }), false, ReasonDeviceUnknown, "mail-breakglass", nil, ""},
		{"excluded only", facts("wiki", func(f *Facts) { f.Groups = []string{"contractors"}; f.Risk = LevelHigh }), true, ReasonExcluded, "wiki-trial", nil, ""},
		{"no_policy for route", facts("bare", nil), false, ReasonNoPolicy, "", nil, ""},
		{"no_policy outside groups", facts("docs", func(f *Facts) { f.Route = "nothing" }), false, ReasonNoPolicy, "", nil, ""},
		{"report-only fails, never blocks", facts("wiki", func(f *Facts) { f.Risk = LevelHigh }), true, ReasonAllowed, "wiki-trial", []string{"wiki-trial"}, ReasonRiskTooHigh},
		{"report-only passes", facts("wiki", nil), true, ReasonAllowed, "wiki-trial", nil, ""},
		{"enforce passes, report-only fails", facts("docs", func(f *Facts) { f.Groups = []string{"sales"}; f.Risk = LevelMedium }), true, ReasonAllowed, "docs-ios", []string{"docs-trial"}, ReasonRiskTooHigh},
		{"enforce fails, report-only fails", facts("docs", func(f *Facts) { f.Groups = []string{"sales"}; f.Risk = LevelHigh }), false, ReasonRiskTooHigh, "docs-ios", []string{"docs-trial"}, ReasonRiskTooHigh},
		{"platform not targeted", facts("docs", func(f *Facts) { f.Groups = []string{"sales"}; f.Platform = "android"; f.Risk = LevelHigh }), true, ReasonAllowed, "docs-trial", []string{"docs-trial"}, ReasonRiskTooHigh},
		{"unknown platform not targeted", facts("docs", func(f *Facts) { f.Groups = []string{"sales"}; f.Platform = ""; f.Risk = LevelHigh }), true, ReasonAllowed, "docs-trial", []string{"docs-trial"}, ReasonRiskTooHigh},
		{"group not targeted", facts("docs", func(f *Facts) { f.Risk = LevelHigh }), true, ReasonAllowed, "docs-trial", []string{"docs-trial"}, ReasonRiskTooHigh},
		{"no device, not required", facts("open", func(f *Facts) { f.DeviceID = "" }), true, ReasonAllowed, "open", nil, ""},
		{"unknown allowed", facts("open", func(f *Facts) { f.Risk = LevelUnknown; f.OSVersion = "1" }), true, ReasonAllowed, "open", nil, ""},
		{"stale allowed skips risk", facts("open", func(f *Facts) { f.Stale = true; f.Risk = LevelHigh }), true, ReasonAllowed, "open", nil, ""},
		{"stale allowed checks os", facts("open", func(f *Facts) { f.Stale = true; f.OSVersion = "15.9" }), false, ReasonOSTooOld, "open", nil, ""},
		{"not stale checks risk", facts("open", func(f *Facts) { f.Risk = LevelMedium }), false, ReasonRiskTooHigh, "open", nil, ""},
		{"owner not required", facts("open", func(f *Facts) { f.Owner = "bob" }), true, ReasonAllowed, "open", nil, ""},
		{"self-asserted checked anyway", facts("open", func(f *Facts) { f.Owner = "bob"; f.SelfAsserted = true }), false, ReasonDeviceNotOwned, "open", nil, ""},
		{"max high passes high", facts("hi", func(f *Facts) { f.Risk = LevelHigh }), true, ReasonAllowed, "hi", nil, ""},
		{"max high needs known device", facts("hi", func(f *Facts) { f.Risk = LevelUnknown }), false, ReasonDeviceUnknown, "hi", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.Evaluate(tt.facts)
			assert.Equal(t, tt.allow, d.Allow, "allow")
			assert.Equal(t, tt.reason, d.Reason, "reason")
			assert.Equal(t, tt.policy, d.Policy, "policy")
			assert.Equal(t, tt.reportOnly, d.ReportOnlyFailed, "report-only failed")
			assert.Equal(t, len(tt.reportOnly), d.ReportOnly)
			assert.Equal(t, tt.roReason, d.ReportOnlyReason)

			ex := s.Explain(tt.facts)
			assert.Equal(t, d, ex.Decision, "Explain decides like Evaluate")
			require.Len(t, ex.Policies, len(s.Policies()))
			for i, pr := range ex.Policies {
				assert.Equal(t, pr.Applied, d.Applied.Has(i), pr.Name)
				assert.Equal(t, pr.Applied && !pr.Pass, d.Failed.Has(i), pr.Name)
			}
		})
	}
}

func TestEveryReasonCovered(t *testing.T) {
	// Every reason of the closed set is reachable end to end (see TestEvaluate).
	s := mustSet(t, evalConfig)
	seen := map[Reason]bool{}
	for _, f := range []*Facts{
		facts("mail", nil), facts("wiki", func(f *Facts) { f.Groups = []string{"contractors"} }),
		facts("mail", func(f *Facts) { f.Risk = LevelHigh }), facts("mail", func(f *Facts) { f.Risk = LevelUnknown }),
		facts("mail", func(f *Facts) { f.Stale = true }), facts("mail", func(f *Facts) { f.DeviceID = "" }),
		facts("mail", func(f *Facts) { f.Owner = "bob" }), facts("mail", func(f *Facts) { f.Platform = "blackberry" }),
		facts("mail", func(f *Facts) { f.OSVersion = "9" }), facts("bare", nil),
	} {
		seen[s.Evaluate(f).Reason] = true
	}
	for _, r := range Reasons() {
		assert.True(t, seen[r], "reason %s not reached", r)
	}
}

func TestBits(t *testing.T) {
	s := mustSet(t, evalConfig)
	d := s.Evaluate(facts("docs", func(f *Facts) { f.Groups = []string{"sales"}; f.Risk = LevelHigh }))
	for i, p := range s.Policies() {
		assert.Equal(t, p.Name == "docs-ios" || p.Name == "docs-trial", d.Applied.Has(i), p.Name)
		assert.Equal(t, p.Name == "docs-ios" || p.Name == "docs-trial", d.Failed.Has(i), p.Name)
		assert.Equal(t, i, p.Index)
	}
	var b Bits
	b.set(0)
	b.set(63)
	b.set(64)
	b.set(255)
	for _, i := range []int{0, 63, 64, 255} {
		assert.True(t, b.Has(i))
	}
	for _, i := range []int{-1, 1, 62, 65, 254, 256} {
		assert.False(t, b.Has(i))
	}
}

func TestExplain(t *testing.T) {
	s := mustSet(t, evalConfig)
	tests := []struct {
		name  string
		facts *Facts
		want  map[string]PolicyResult
	}{
		{"mail risky", facts("mail", func(f *Facts) { f.Risk = LevelHigh }), map[string]PolicyResult{
			"mobile-risk":     {Name: "mobile-risk", Mode: "enforce", Applied: true, Reason: ReasonRiskTooHigh, Detail: "risk high > max_risk low since 2026-11-24T10:00:00Z (grace_period 1h0m0s over)"},
			"mail-breakglass": {Name: "mail-breakglass", Mode: "enforce", NotApplied: "user not in groups [breakglass]"},
			"docs-ios":        {Name: "docs-ios", Mode: "enforce", NotApplied: "route mail not in [docs]"},
		}},
		{"excluded", facts("mail", func(f *Facts) { f.Groups = []string{"x", "BREAKGLASS"} }), map[string]PolicyResult{
			"mobile-risk":     {Name: "mobile-risk", Mode: "enforce", Excluded: true, NotApplied: "excluded by group breakglass"},
			"mail-breakglass": {Name: "mail-breakglass", Mode: "enforce", Applied: true, Pass: true, Reason: ReasonAllowed, Detail: "risk secured <= max_risk high"},
		}},
		{"old os", facts("mail", func(f *Facts) { f.OSVersion = "15.1" }), map[string]PolicyResult{
			"mobile-risk": {Name: "mobile-risk", Mode: "enforce", Applied: true, Reason: ReasonOSTooOld, Detail: "ios 15.1 < min_os 16.0"},
		}},
		{"docs android", facts("docs", func(f *Facts) { f.Groups = []string{"sales"}; f.Platform = "android" }), map[string]PolicyResult{
			"docs-ios":   {Name: "docs-ios", Mode: "enforce", NotApplied: "platform android not in [iOS]"},
			"docs-trial": {Name: "docs-trial", Mode: "report-only", Applied: true, Pass: true, Reason: ReasonAllowed, Detail: "risk secured <= max_risk secured"},
		}},
		{"grace", facts("mail", func(f *Facts) { f.Risk = LevelMedium; f.RiskSince = now.Add(-time.Minute) }), map[string]PolicyResult{
			"mobile-risk": {Name: "mobile-risk", Mode: "enforce", Applied: true, Pass: true, Reason: ReasonAllowed, Detail: "risk medium > max_risk low, within grace_period 1h0m0s"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := s.Explain(tt.facts)
			got := map[string]PolicyResult{}
			for _, pr := range ex.Policies {
				got[pr.Name] = pr
			}
			for name, want := range tt.want {
				assert.Equal(t, want, got[name])
			}
		})
	}
}

func TestExplainJSON(t *testing.T) {
	s := mustSet(t, evalConfig)
	data, err := json.Marshal(s.Explain(facts("wiki", func(f *Facts) { f.Risk = LevelHigh })))
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	dec := m["decision"].(map[string]any)
	assert.Equal(t, true, dec["allow"])
	assert.Equal(t, "allowed", dec["reason"])
	assert.Equal(t, "wiki-trial", dec["policy"])
	assert.Equal(t, []any{"wiki-trial"}, dec["report_only_failed"])
	assert.Equal(t, "risk_too_high", dec["report_only_reason"])
	assert.NotContains(t, dec, "Applied")
	pols := m["policies"].([]any)
	assert.Len(t, pols, 7)
	last := pols[6].(map[string]any)
	assert.Equal(t, "wiki-trial", last["name"])
	assert.Equal(t, "report-only", last["mode"])
	assert.Equal(t, "risk high > max_risk low", last["detail"])
}

func TestEvaluateAllocs(t *testing.T) {
	s := mustSet(t, evalConfig)
	allow := facts("mail", func(f *Facts) { f.Groups = []string{"Staff", "sales", "eng"} })
	for name, f := range map[string]*Facts{"allow": allow, "excluded": facts("wiki", func(f *Facts) { f.Groups = []string{"contractors"} }), "no_policy": facts("bare", nil)} {
		assert.Zero(t, testing.AllocsPerRun(100, func() { s.Evaluate(f) }), name)
	}
	// Block path with no report-only policy failing.
	block := facts("mail", func(f *Facts) { f.Risk = LevelHigh; f.Groups = []string{"BreakGlass2"} })
	assert.Zero(t, testing.AllocsPerRun(100, func() { s.Evaluate(block) }))
}

func BenchmarkEvaluate(b *testing.B) {
	s := mustSet(b, evalConfig)
	cases := []struct {
		name  string
		facts *Facts
	}{
		{"allow", facts("mail", func(f *Facts) { f.Groups = []string{"staff", "Sales", "eng"} })},
		{"block", facts("mail", func(f *Facts) { f.Groups = []string{"staff", "Sales", "eng"}; f.Risk = LevelHigh })},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Evaluate(c.facts)
			}
		})
	}
}

func TestGroupMatching(t *testing.T) {
	many := "  - {name: many, routes: [other], groups: ["
	for i := range maxGroupBits + 1 {
		many += fmt.Sprintf("g%d, ", i)
	}
	many += "x]}\n"
	base := `
auth: {issuer: "https://idp.example.com", client_id: rg}
routes: [{name: r, upstream: "http://r.internal"}, {name: other, path_prefix: /o, upstream: "http://o.internal"}]
policies:
  - {name: p, routes: [r], groups: [Sales, Équipe, g256], exclude_groups: [BreakGlass]}
`
	for name, yaml := range map[string]string{"bitmap": base, "fallback": base + many} {
		t.Run(name, func(t *testing.T) {
			s := mustSet(t, yaml)
			assert.Equal(t, name == "bitmap", s.groupIDs != nil)
			tests := []struct {
				groups []string
				want   Reason
			}{
				{[]string{"sales"}, ReasonAllowed},
				{[]string{"SALES"}, ReasonAllowed},
				{[]string{"x", "éQUIPE"}, ReasonAllowed},
				{[]string{"G256"}, ReasonAllowed},
				{[]string{"sales", "breakglass"}, ReasonExcluded},
				{[]string{"sales", "BREAKGLASS"}, ReasonExcluded},
				{[]string{"saless"}, ReasonNoPolicy},
				{nil, ReasonNoPolicy},
			}
			for _, tt := range tests {
				d := s.Evaluate(facts("r", func(f *Facts) { f.Groups = tt.groups }))
				assert.Equal(t, tt.want, d.Reason, "%v", tt.groups)
			}
		})
	}
}
