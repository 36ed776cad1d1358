package policy

import (
	"strings"
	"time"
)

// Facts are what is known about one request when it is decided. Evaluate
// reads nothing else: no clock, no I/O.
type Facts struct {
	// Now is the request time (for grace periods).
	Now time.Time
	// Route is the matched route's name.
	Route string
	// User is the authenticated user; Groups their groups.
	User   string
	Groups []string
	// DeviceID is the identified device; empty when no source yielded one.
	DeviceID string
	// SelfAsserted is true when the client itself asserted DeviceID (query
	// parameter, untrusted claim): it then counts only if the vendor lists
	// the device as the same user's.
	SelfAsserted bool
	// Risk is the device's level (LevelUnknown: no vendor reported it).
	Risk Level
	// Stale is true when every vendor reporting the device is stale.
	Stale bool
	// RiskSince is when the device reached its current level (grace period).
	RiskSince time.Time
	// Vendor reported the level; Owner is the device's registered user.
	Vendor string
	Owner  string
	// Platform (lower case: ios, android, ...) and OSVersion of the device.
	Platform  string
	OSVersion string
}

// Decision is the outcome of Evaluate.
type Decision struct {
	// Allow is true when the request may be forwarded.
	Allow bool `json:"allow"`
	// Reason is why (allowed when Allow and no policy failed).
	Reason Reason `json:"reason"`
	// Policy is the name of the policy that decided; empty for no_policy.
	Policy string `json:"policy"`
	// ReportOnly counts report-only policies that failed; their names are in
	// ReportOnlyFailed (nil when none failed, so that allowing allocates
	// nothing).
	ReportOnly       int      `json:"report_only"`
	ReportOnlyFailed []string `json:"report_only_failed,omitempty"`
	// ReportOnlyReason is the reason of the first failed report-only policy.
	ReportOnlyReason Reason `json:"report_only_reason,omitempty"`
	// Applied and Failed hold, by CompiledPolicy.Index, whether each policy
	// applied to the request and whether it failed (a failed policy also
	// applied). A policy not in Applied did not apply (not_applied).
	Applied Bits `json:"-"`
	Failed  Bits `json:"-"`
}

// Bits is a set of policy indexes (at most MaxPolicies).
type Bits [MaxPolicies / 64]uint64

// Has reports whether index i is in the set.
func (b Bits) Has(i int) bool {
	return i >= 0 && i < MaxPolicies && b[i/64]&(1<<(i%64)) != 0
}

func (b *Bits) set(i int) { b[i/64] |= 1 << (i % 64) }

// Evaluate decides a request from its facts (DESIGN.md "Risk levels and
// policy semantics"). Every applicable policy is evaluated; the request is
// allowed only if every applicable enforce policy passes. It reads no clock
// and does no I/O, and it allocates nothing unless a report-only policy
// fails.
func (s *Set) Evaluate(f *Facts) Decision { return s.evaluate(f, nil) }

// evaluate is Evaluate and Explain: with ex nil it only decides.
func (s *Set) evaluate(f *Facts, ex *Explanation) Decision {
	var d Decision
	firstEnforce, firstReport, firstExcluded, firstExcludedEnforce, firstFail := -1, -1, -1, -1, -1
	groups, useBits := s.userGroups(f.Groups)
	for i, p := range s.policies {
		if a := p.applies(f, &groups, useBits); a != applyYes {
			if a == applyExcluded {
				if firstExcluded < 0 {
					firstExcluded = i
				}
				if firstExcludedEnforce < 0 && p.Mode == ModeEnforce {
					firstExcludedEnforce = i
				}
			}
			if ex != nil {
				ex.Policies = append(ex.Policies, PolicyResult{
					Name: p.Name, Mode: string(p.Mode),
					NotApplied: p.notApplied(f, a), Excluded: a == applyExcluded,
				})
			}
			continue
		}
		d.Applied.set(i)
		r := p.check(f)
		if ex != nil {
			ex.Policies = append(ex.Policies, PolicyResult{
				Name: p.Name, Mode: string(p.Mode), Applied: true,
				Pass: r == ReasonAllowed, Reason: r, Detail: p.detail(f, r),
			})
		}
		if p.Mode == ModeReportOnly {
			if firstReport < 0 {
				firstReport = i
			}
			if r != ReasonAllowed {
				d.Failed.set(i)
				if d.ReportOnly == 0 {
					d.ReportOnlyReason = r
				}
				d.ReportOnly++
				d.ReportOnlyFailed = append(d.ReportOnlyFailed, p.Name)
			}
			continue
		}
		if firstEnforce < 0 {
			firstEnforce = i
		}
		if r != ReasonAllowed {
			d.Failed.set(i)
			if firstFail < 0 {
				firstFail = i
				d.Reason = r
			}
		}
	}
	switch {
	case firstFail >= 0:
		d.Policy = s.policies[firstFail].Name
	case firstEnforce >= 0:
		d.Allow, d.Reason, d.Policy = true, ReasonAllowed, s.policies[firstEnforce].Name
	case firstExcludedEnforce >= 0:
		// Only an exclusion kept the enforced policies out: the request
		// passes because of the exclusion (break-glass use must show as
		// excluded), whatever report-only policies applied.
		d.Allow, d.Reason, d.Policy = true, ReasonExcluded, s.policies[firstExcludedEnforce].Name
	case firstReport >= 0:
		d.Allow, d.Reason, d.Policy = true, ReasonAllowed, s.policies[firstReport].Name
	case firstExcluded >= 0:
		d.Allow, d.Reason, d.Policy = true, ReasonExcluded, s.policies[firstExcluded].Name
	default:
		d.Reason = ReasonNoPolicy
	}
	return d
}

// applyResult says whether a policy applies, or the first condition that
// keeps it out.
type applyResult uint8

const (
	applyYes applyResult = iota
	applyRoute
	applyGroups
	applyPlatform
	applyExcluded
)

// applies checks the policy's targeting: route, groups, platform, then
// exclusions (which beat inclusions).
// groups is the request's groups as a bitmap of policy groups when useBits
// is set.
func (p *CompiledPolicy) applies(f *Facts, groups *groupBits, useBits bool) applyResult {
	if len(p.routes) > 0 && !contains(p.routes, f.Route) {
		return applyRoute
	}
	if !p.groups.empty() && !p.inGroups(f, &p.groupMask, p.groups, groups, useBits) {
		return applyGroups
	}
	// A device of unknown platform is not matched by a platform-targeted
	// policy (Platform "" is in no list).
	if !p.platforms.empty() && (f.Platform == "" || !p.platforms.has(f.Platform)) {
		return applyPlatform
	}
	if !p.exclude.empty() && p.inGroups(f, &p.excludeMask, p.exclude, groups, useBits) {
		return applyExcluded
	}
	return applyYes
}

func (p *CompiledPolicy) inGroups(f *Facts, mask *groupBits, set foldSet, groups *groupBits, useBits bool) bool {
	if useBits {
		return mask.intersects(groups)
	}
	return set.hasAny(f.Groups)
}

// check runs an applicable policy's checks in order and returns the first
// failure's reason, or ReasonAllowed.
func (p *CompiledPolicy) check(f *Facts) Reason {
	if f.DeviceID == "" {
		if p.requireDevice {
			return ReasonDeviceMissing
		}
		return ReasonAllowed // nothing to check without a device
	}
	if f.Risk == LevelUnknown {
		// max_risk high lets every level through but, as in Intune, the
		// device must be known: on_unknown allow does not override that
		// (validation refuses the combination).
		if p.allowUnknown && p.maxRisk < LevelHigh {
			return ReasonAllowed
		}
		return ReasonDeviceUnknown
	}
	if !p.ownerOK(f) {
		return ReasonDeviceNotOwned
	}
	checkRisk := true
	if f.Stale {
		if !p.allowStale {
			return ReasonRiskStale
		}
		checkRisk = false // fail open on risk, but platform and OS still count
	}
	if f.Platform != "" && p.blockPlatforms.has(f.Platform) {
		return ReasonPlatformBlocked
	}
	if want, ok := p.minOSFor(f.Platform); ok && (!hasVersion(f.OSVersion) || CompareVersions(f.OSVersion, want) < 0) {
		return ReasonOSTooOld
	}
	if checkRisk && f.Risk > p.maxRisk && !p.inGrace(f) {
		return ReasonRiskTooHigh
	}
	return ReasonAllowed
}

// ownerOK: a self-asserted id counts only when the vendor lists the device
// as the same user's; a trusted id without a known owner passes.
func (p *CompiledPolicy) ownerOK(f *Facts) bool {
	if !p.requireOwner && !f.SelfAsserted {
		return true
	}
	owner := strings.TrimSpace(f.Owner)
	if owner == "" {
		return !f.SelfAsserted
	}
	return strings.EqualFold(owner, strings.TrimSpace(f.User))
}

// inGrace: the device reached its level less than grace ago. A RiskSince
// in the future (a vendor clock ahead of ours) counts only up to grace
// ahead, so that a bogus far-future timestamp cannot grant lasting access.
func (p *CompiledPolicy) inGrace(f *Facts) bool {
	if p.grace <= 0 || f.RiskSince.IsZero() {
		return false
	}
	elapsed := f.Now.Sub(f.RiskSince)
	return elapsed < p.grace && elapsed > -p.grace
}

func (p *CompiledPolicy) minOSFor(platform string) (string, bool) {
	if len(p.minOS) == 0 || platform == "" {
		return "", false
	}
	if isLowerASCII(platform) {
		v, ok := p.minOS[platform]
		return v, ok
	}
	for k, v := range p.minOS {
		if strings.EqualFold(k, platform) {
			return v, true
		}
	}
	return "", false
}
