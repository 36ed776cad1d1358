package policy

import (
	"fmt"
	"strings"
	"time"
)

// Explanation is a decision with the verdict of every policy, for the
// explain command and the audit of a what-if.
type Explanation struct {
	Decision Decision       `json:"decision"`
	Policies []PolicyResult `json:"policies"`
}

// PolicyResult is one policy's part in an Explanation.
type PolicyResult struct {
	Name string `json:"name"`
	Mode string `json:"mode"`
	// Applied is true when the policy applied to the request; otherwise
	// NotApplied names the first condition that kept it out, e.g.
	// "route docs not in [mail]" or "excluded by group breakglass".
	Applied    bool   `json:"applied"`
	NotApplied string `json:"not_applied,omitempty"`
	// Excluded is true when only an exclusion kept the policy out.
	Excluded bool `json:"excluded,omitempty"`
	// Pass, Reason and Detail are the verdict of an applied policy, e.g.
	// Reason risk_too_high with Detail "risk high > max_risk low".
	Pass   bool   `json:"pass"`
	Reason Reason `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Explain decides like Evaluate, through the same code, and says why for
// every policy.
func (s *Set) Explain(f *Facts) Explanation {
	ex := Explanation{Policies: make([]PolicyResult, 0, len(s.policies))}
	ex.Decision = s.evaluate(f, &ex)
	return ex
}

func (p *CompiledPolicy) notApplied(f *Facts, a applyResult) string {
	switch a {
	case applyRoute:
		return fmt.Sprintf("route %s not in %s", f.Route, list(p.routes))
	case applyGroups:
		return fmt.Sprintf("user not in groups %s", list(p.groups.list))
	case applyPlatform:
		plat := orUnknown(f.Platform)
		switch {
		case f.DeviceID == "":
			plat = "unknown (no device id)"
		case f.Platform == "" && f.Risk == LevelUnknown:
			plat = "unknown (device not reported by any vendor)"
		}
		return fmt.Sprintf("platform %s not in %s", plat, list(p.platforms.list))
	case applyExcluded:
		g, _ := p.exclude.find(f.Groups)
		return "excluded by group " + g
	}
	return ""
}

// detail says what check r came from, with the values compared.
func (p *CompiledPolicy) detail(f *Facts, r Reason) string {
	switch r {
	case ReasonDeviceMissing:
		return "no device id and require_device is set"
	case ReasonDeviceUnknown:
		if p.allowUnknown {
			return fmt.Sprintf("device %s not reported by any vendor (max_risk high needs a known device)", f.DeviceID)
		}
		return fmt.Sprintf("device %s not reported by any vendor (on_unknown block)", f.DeviceID)
	case ReasonDeviceNotOwned:
		if strings.TrimSpace(f.Owner) == "" {
			return fmt.Sprintf("self-asserted device %s has no registered owner", f.DeviceID)
		}
		if f.SelfAsserted && !p.requireOwner {
			return fmt.Sprintf("self-asserted device %s belongs to %s, not %s", f.DeviceID, f.Owner, orUnknown(f.User))
		}
		return fmt.Sprintf("device owner %s is not %s", f.Owner, orUnknown(f.User))
	case ReasonRiskStale:
		return fmt.Sprintf("risk data from %s is stale (on_stale block)", orUnknown(f.Vendor))
	case ReasonPlatformBlocked:
		return fmt.Sprintf("platform %s is in block_platforms", f.Platform)
	case ReasonOSTooOld:
		want, _ := p.minOSFor(f.Platform)
		if !hasVersion(f.OSVersion) {
			return fmt.Sprintf("%s version unknown (%q), min_os %s", f.Platform, f.OSVersion, want)
		}
		return fmt.Sprintf("%s %s < min_os %s", f.Platform, f.OSVersion, want)
	case ReasonRiskTooHigh:
		if p.grace > 0 {
			if f.RiskSince.IsZero() {
				return fmt.Sprintf("risk %s > max_risk %s (grace_period %s: time of change unknown)", f.Risk, p.maxRisk, p.grace)
			}
			return fmt.Sprintf("risk %s > max_risk %s since %s (grace_period %s over)", f.Risk, p.maxRisk, f.RiskSince.UTC().Format(time.RFC3339), p.grace)
		}
		return fmt.Sprintf("risk %s > max_risk %s", f.Risk, p.maxRisk)
	}
	// Passed: say what let it through.
	switch {
	case f.DeviceID == "":
		return "no device id; require_device is off"
	case f.Risk == LevelUnknown:
		return "device unknown; on_unknown allow"
	case f.Stale:
		return fmt.Sprintf("risk %s is stale; on_stale allow", f.Risk)
	case f.Risk > p.maxRisk:
		return fmt.Sprintf("risk %s > max_risk %s, within grace_period %s", f.Risk, p.maxRisk, p.grace)
	}
	return fmt.Sprintf("risk %s <= max_risk %s", f.Risk, p.maxRisk)
}

func list(xs []string) string { return "[" + strings.Join(xs, " ") + "]" }

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
