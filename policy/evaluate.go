package policy

import "time"

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
	Allow bool
	// Reason is why (allowed when Allow and no policy failed).
	Reason Reason
	// Policy is the name of the policy that decided; empty for no_policy.
	Policy string
	// ReportOnly counts report-only policies that failed; their names are in
	// ReportOnlyFailed (nil when none failed, so that allowing allocates
	// nothing).
	ReportOnly       int
	ReportOnlyFailed []string
	// ReportOnlyReason is the reason of the first failed report-only policy.
	ReportOnlyReason Reason
}
