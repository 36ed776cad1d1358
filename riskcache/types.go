package riskcache

import (
	"context"
	"time"

	"github.com/riskgate/riskgate/policy"
)

// Report is one vendor's report on one device, in riskgate's terms.
type Report struct {
	// DeviceID is the id riskgate looks the device up by. AltIDs are other
	// ids of the same device (Graph's easDeviceId besides azureADDeviceId).
	DeviceID string
	AltIDs   []string
	Level    policy.Level
	// User is the device's registered owner (UPN or e-mail).
	User      string
	Platform  string // lower case: ios, android, windows, macos
	OSVersion string
	UpdatedAt time.Time
	// Deleted removes the device from the vendor's data.
	Deleted bool
}

// Risk is what the cache knows about a device, merged over vendors: the
// worst fresh level wins.
type Risk struct {
	// Known is false when no vendor reported the device.
	Known bool
	Level policy.Level
	// Stale is true when every vendor reporting the device is stale.
	Stale bool
	// Vendor that reported Level; Owner, Platform and OSVersion from it.
	Vendor    string
	Owner     string
	Platform  string
	OSVersion string
	// UpdatedAt is the vendor's timestamp; Since is when the device reached
	// its current level (for grace periods).
	UpdatedAt time.Time
	Since     time.Time
}

// Page is one page of a vendor's device list.
type Page struct {
	Reports []Report
	// NextCursor asks for the next page, or (after the last page) for the
	// changes since this sync. Empty after the last page means the source
	// has no delta: every sync is a full sync.
	NextCursor string
	// HasMore is true when another page follows in this sync.
	HasMore bool
}

// Source is a vendor client. Fetch with an empty cursor starts a full sync.
type Source interface {
	Fetch(ctx context.Context, cursor string) (Page, error)
}
