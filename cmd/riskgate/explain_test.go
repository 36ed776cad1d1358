package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// explainJSON is the --json output, as a script reads it.
type explainJSON struct {
	Route    string `json:"route"`
	Device   string `json:"device_id"`
	Risk     string `json:"risk"`
	Decision struct {
		Allow            bool     `json:"allow"`
		Reason           string   `json:"reason"`
		Policy           string   `json:"policy"`
		ReportOnly       int      `json:"report_only"`
		ReportOnlyFailed []string `json:"report_only_failed"`
	} `json:"decision"`
	Policies []struct {
		Name       string `json:"name"`
		Mode       string `json:"mode"`
		Applied    bool   `json:"applied"`
		NotApplied string `json:"not_applied"`
		Excluded   bool   `json:"excluded"`
		Pass       bool   `json:"pass"`
		Reason     string `json:"reason"`
		Detail     string `json:"detail"`
	} `json:"policies"`
}

func (e *explainJSON) policy(t *testing.T, name string) int {
	t.Helper()
	for i, p := range e.Policies {
		if p.Name == name {
			return i
		}
	}
	t.Fatalf("policy %s not in the explanation", name)
	return -1
}

func TestExplainCLI(t *testing.T) {
	t.Parallel()
	const (
		cfg  = "testdata/explain.yaml"
		mail = "https://mail.corp.example/owa"
		docs = "https://mail.corp.example/docs/handbook"
		open = "https://open.corp.example/"
	)
	type policyWant struct {
		name string
		line string // the policy's line in the text output, without padding
	}
	tests := []struct {
		name string
		args []string
		// text output
		decision, reason, policy, route, risk string
		lines                                 []policyWant
		// JSON output
		allow      bool
		reportOnly []string
	}{
		{
			name:     "allow",
			args:     []string{"--url", mail, "--device", "d-1", "--risk", "low", "--platform", "ios"},
			decision: "allow", reason: "allowed", policy: "mail-risk", route: "mail", risk: "low", allow: true,
			lines: []policyWant{
				{"mail-risk", "enforce applied: pass (risk low <= max_risk low)"},
				{"contractors", "enforce not applied: user not in groups [contractors]"},
				{"android-only", "enforce not applied: platform ios not in [android]"},
				{"docs-trial", "report-only not applied: route mail not in [docs]"},
			},
		},
		{
			name:     "block",
			args:     []string{"--url", mail, "--device", "d-1", "--risk", "high"},
			decision: "block", reason: "risk_too_high", policy: "mail-risk", route: "mail", risk: "high",
			lines: []policyWant{
				{"mail-risk", "enforce applied: FAIL risk_too_high (risk high > max_risk low)"},
				{"android-only", "enforce not applied: platform unknown not in [android]"},
			},
		},
		{
			name:     "unknown device",
			args:     []string{"--url", mail, "--device", "d-404"},
			decision: "block", reason: "device_unknown", policy: "mail-risk", route: "mail", risk: "unknown",
			lines: []policyWant{
				{"mail-risk", "enforce applied: FAIL device_unknown (device d-404 not reported by any vendor (on_unknown block))"},
			},
		},
		{
			name:     "no device",
			args:     []string{"--url", mail, "--risk", "low"},
			decision: "block", reason: "device_missing", policy: "mail-risk", route: "mail", risk: "low",
		},
		{
			name:     "no policy applies",
			args:     []string{"--url", open, "--device", "d-1", "--risk", "secured"},
			decision: "block", reason: "no_policy", route: "open", risk: "secured",
			lines: []policyWant{
				{"mail-risk", "enforce not applied: route open not in [mail]"},
				{"docs-base", "enforce not applied: route open not in [docs]"},
			},
		},
		{
			name:     "excluded",
			args:     []string{"--url", mail, "--device", "d-1", "--risk", "high", "--groups", "staff,breakglass"},
			decision: "allow", reason: "excluded", policy: "mail-risk", route: "mail", risk: "high", allow: true,
			lines: []policyWant{
				{"mail-risk", "enforce not applied: excluded by group breakglass"},
			},
		},
		{
			name:     "group policy applies to its group",
			args:     []string{"--url", mail, "--device", "d-1", "--risk", "low", "--groups", "contractors"},
			decision: "block", reason: "risk_too_high", policy: "contractors", route: "mail", risk: "low",
			lines: []policyWant{
				{"mail-risk", "enforce applied: pass (risk low <= max_risk low)"},
				{"contractors", "enforce applied: FAIL risk_too_high (risk low > max_risk secured)"},
			},
		},
		{
			name:     "report-only",
			args:     []string{"--url", docs, "--device", "d-1", "--risk", "medium"},
			decision: "allow (report-only policies would block)", reason: "allowed", policy: "docs-base",
			route: "docs", risk: "medium", allow: true, reportOnly: []string{"docs-trial"},
			lines: []policyWant{
				{"docs-trial", "report-only applied: FAIL risk_too_high (risk medium > max_risk secured)"},
				{"docs-base", "enforce applied: pass (risk medium <= max_risk high)"},
				{"mail-risk", "enforce not applied: route docs not in [mail]"},
				// The first condition that keeps a policy out is named.
				{"contractors", "enforce not applied: route docs not in [mail]"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"explain", "--config", cfg, "--user", testUser}, tt.args...)

			out, errOut, err := runCmd(t, args...)
			require.NoError(t, err, errOut)
			assert.Contains(t, out, "decision: "+tt.decision+"\n")
			assert.Contains(t, out, "reason:   "+tt.reason+"\n")
			if tt.policy != "" {
				assert.Contains(t, out, "policy:   "+tt.policy+"\n")
			} else {
				assert.NotContains(t, out, "policy:   ")
			}
			assert.Contains(t, out, "route:    "+tt.route+"\n")
			assert.Contains(t, out, "risk:     "+tt.risk+"\n")
			for _, p := range tt.lines {
				assert.Regexp(t, `(?m)^  `+p.name+` +`+regexpWords(p.line)+`$`, out)
			}

			out, errOut, err = runCmd(t, append(args, "--json")...)
			require.NoError(t, err, errOut)
			var ex explainJSON
			require.NoError(t, json.Unmarshal([]byte(out), &ex), out)
			assert.Equal(t, tt.allow, ex.Decision.Allow)
			assert.Equal(t, tt.reason, ex.Decision.Reason)
			assert.Equal(t, tt.policy, ex.Decision.Policy)
			assert.Equal(t, tt.route, ex.Route)
			assert.Equal(t, tt.risk, ex.Risk)
			assert.Equal(t, tt.reportOnly, ex.Decision.ReportOnlyFailed)
			assert.Len(t, ex.Policies, 5, "every policy is listed")
		})
	}

	t.Run("json details", func(t *testing.T) {
		out, _, err := runCmd(t, "explain", "--config", cfg, "--user", testUser, "--url", mail,
			"--device", "d-1", "--risk", "high", "--groups", "contractors", "--platform", "Android", "--json")
		require.NoError(t, err)
		var ex explainJSON
		require.NoError(t, json.Unmarshal([]byte(out), &ex), out)
		assert.Equal(t, "d-1", ex.Device)
		assert.Contains(t, out, `"detail": "risk high > max_risk low"`, "JSON for people and jq: no HTML escapes")
		p := ex.Policies[ex.policy(t, "mail-risk")]
		assert.True(t, p.Applied)
		assert.False(t, p.Pass)
		assert.Equal(t, "risk_too_high", p.Reason)
		assert.Equal(t, "risk high > max_risk low", p.Detail)
		p = ex.Policies[ex.policy(t, "android-only")]
		assert.True(t, p.Applied, "platforms match case-insensitively")
		p = ex.Policies[ex.policy(t, "docs-trial")]
		assert.False(t, p.Applied)
		assert.Equal(t, "route mail not in [docs]", p.NotApplied)

		out, _, err = runCmd(t, "explain", "--config", cfg, "--user", testUser, "--url", mail,
			"--device", "d-1", "--risk", "high", "--groups", "breakglass", "--json")
		require.NoError(t, err)
		ex = explainJSON{}
		require.NoError(t, json.Unmarshal([]byte(out), &ex), out)
		p = ex.Policies[ex.policy(t, "mail-risk")]
		assert.False(t, p.Applied)
		assert.True(t, p.Excluded)
		assert.Equal(t, "excluded by group breakglass", p.NotApplied)
	})

	t.Run("errors", func(t *testing.T) {
		_, errOut, err := runCmd(t, "explain", "--config", cfg, "--user", testUser, "--url", "https://elsewhere.example/")
		require.Equal(t, exitError(1), err)
		assert.Contains(t, errOut, "no route matches https://elsewhere.example/")

		_, errOut, err = runCmd(t, "explain", "--config", cfg, "--user", testUser, "--url", "/owa")
		require.Equal(t, exitError(1), err)
		assert.Contains(t, errOut, "absolute URL")

		_, errOut, err = runCmd(t, "explain", "--config", cfg, "--user", testUser, "--url", mail, "--risk", "severe")
		require.Equal(t, exitError(1), err)
		assert.Contains(t, errOut, "severe")

		_, errOut, err = runCmd(t, "explain", "--config", cfg, "--url", mail)
		require.Equal(t, exitError(2), err)
		assert.Contains(t, errOut, "--user are required")

		out, _, err := runCmd(t, "explain", "--config", "testdata/broken.yaml", "--user", testUser, "--url", mail)
		require.Equal(t, exitError(1), err)
		assert.Empty(t, out)
	})
}

// regexpWords matches s with any run of spaces where s has one, other
// characters literally.
func regexpWords(s string) string {
	words := strings.Fields(s)
	for i, w := range words {
		words[i] = regexp.QuoteMeta(w)
	}
	return strings.Join(words, " +")
}
