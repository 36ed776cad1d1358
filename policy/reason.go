package policy

// Reason says why a decision was made. Reasons are a closed set: they are
// metric label values and part of the block response contract.
type Reason string

// The closed set of reasons (DESIGN.md "Risk levels and policy semantics").
const (
	ReasonAllowed         Reason = "allowed"
	ReasonExcluded        Reason = "excluded"
	ReasonRiskTooHigh     Reason = "risk_too_high"
	ReasonDeviceUnknown   Reason = "device_unknown"
	ReasonRiskStale       Reason = "risk_stale"
	ReasonDeviceMissing   Reason = "device_missing"
	ReasonDeviceNotOwned  Reason = "device_not_owned"
	ReasonPlatformBlocked Reason = "platform_blocked"
	ReasonOSTooOld        Reason = "os_too_old"
	ReasonNoPolicy        Reason = "no_policy"
)

// Reasons lists every reason, for metrics that pre-create their children.
func Reasons() []Reason {
	return []Reason{ReasonAllowed, ReasonExcluded, ReasonRiskTooHigh, ReasonDeviceUnknown,
		ReasonRiskStale, ReasonDeviceMissing, ReasonDeviceNotOwned, ReasonPlatformBlocked,
		ReasonOSTooOld, ReasonNoPolicy}
}
