package vendorsim

import "net/http"

// tokenRequest counts a token request and serves a queued token fault. It
// reports whether the handler should go on: false when the fault answered.
func (c *core) tokenRequest(w http.ResponseWriter) bool {
	c.tokenRequests.Add(1)
	return !c.fault(w, true)
}

// apiRequest counts a device-list request, refuses it without a valid
// token (a vendor-neutral 401) and serves a queued fault. It reports
// whether the handler should go on: false when the request was answered.
func (c *core) apiRequest(w http.ResponseWriter, r *http.Request) bool {
	c.apiRequests.Add(1)
	if !c.authorized(r) {
		unauthorized(w)
		return false
	}
	return !c.fault(w, false)
}
