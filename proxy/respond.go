package proxy

import (
	"bytes"
	"encoding/json"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/riskgate/riskgate/policy"
)

// PageRenderer renders the HTML pages riskgate answers browsers with: the
// block page and error pages. The proxy sets the status and headers; the
// renderer writes the body. A renderer that fails is replaced by the plain
// default for that response.
type PageRenderer interface {
	RenderPage(w io.Writer, p Page) error
}

// Page is what an HTML page shows.
type Page struct {
	// Status is the HTTP status (403 for a block, 401, 404, 500, 502).
	Status int
	// Title and Message are short, user-facing texts.
	Title   string
	Message string
	// RequestID is the id to quote to the helpdesk.
	RequestID string
	// Block is set on a block page (Status 403).
	Block *BlockInfo
}

// BlockInfo is what a block page and a JSON block response report.
type BlockInfo struct {
	// Reason is why the request was blocked; Policy the policy that
	// blocked it (empty for no_policy).
	Reason policy.Reason
	Policy string
	// Route is the route's name, RouteDisplayName its display name.
	Route            string
	RouteDisplayName string
	// Risk is the device's level name; DeviceID the identified device.
	Risk     string
	DeviceID string
	// User is the authenticated user.
	User string
	// Vendor reported Risk; Platform and OSVersion describe the device.
	Vendor    string
	Platform  string
	OSVersion string
	// MaxRisk and MinOS are the deciding policy's limits (MinOS for the
	// device's platform), for the page's explanation.
	MaxRisk string
	MinOS   string
	// RetryURL is the blocked request's path and query ("Try again").
	RetryURL string
	// SignOutURL lets a user switch accounts (device_not_owned, no_policy).
	SignOutURL string
}

// blockJSON is the JSON block response (DESIGN.md "Block response").
type blockJSON struct {
	Decision  string `json:"decision"`
	Reason    string `json:"reason"`
	Policy    string `json:"policy"`
	Risk      string `json:"risk"`
	DeviceID  string `json:"device_id"`
	RequestID string `json:"request_id"`
}

// errorJSON is the JSON body of every other error response.
type errorJSON struct {
	Error     string `json:"error"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// plainPages is the default PageRenderer: a small, self-contained page
// that renders well on a phone.
type plainPages struct {
	tmpl *template.Template
}

// NewPlainPages returns the default PageRenderer.
func NewPlainPages() PageRenderer {
	return plainPages{tmpl: template.Must(template.New("page").Parse(plainPageHTML))}
}

func (p plainPages) RenderPage(w io.Writer, pg Page) error {
	return p.tmpl.Execute(w, pg)
}

const plainPageHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;line-height:1.5}code{word-break:break-all}</style>
</head><body>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{with .Block}}<dl>
{{if .RouteDisplayName}}<dt>Application</dt><dd>{{.RouteDisplayName}}</dd>{{end}}
<dt>Reason</dt><dd><code>{{.Reason}}</code></dd>
{{if .Policy}}<dt>Policy</dt><dd>{{.Policy}}</dd>{{end}}
{{if .DeviceID}}<dt>Device</dt><dd><code>{{.DeviceID}}</code> (risk: {{.Risk}})</dd>{{end}}
</dl>
<p>Open your device's security (Mobile Threat Defense) app and resolve what it reports, then try again. Access comes back on its own once your device is reported secure.</p>
{{end}}<p>Request id for the helpdesk: <code>{{.RequestID}}</code></p>
</body></html>
`

// blockMessage is the user-facing explanation of each reason.
func blockMessage(r policy.Reason) string {
	switch r {
	case policy.ReasonRiskTooHigh:
		return "Your device's security app reports a threat on this device."
	case policy.ReasonDeviceUnknown:
		return "Your device is not known to your organization's device security service. Install and activate its app."
	case policy.ReasonRiskStale:
		return "Your device's security status could not be confirmed recently."
	case policy.ReasonDeviceMissing:
		return "This device could not be identified. Use a managed device or app."
	case policy.ReasonDeviceNotOwned:
		return "This device is registered to another user."
	case policy.ReasonPlatformBlocked:
		return "This kind of device is not allowed to access this application."
	case policy.ReasonOSTooOld:
		return "Your device's operating system is too old. Update it and try again."
	case policy.ReasonNoPolicy:
		return "No access policy allows this request."
	}
	return "Access to this application was blocked."
}

// wantsJSON reports whether the client asked for JSON.
func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

// wantsHTML reports whether the client is a browser.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// responder writes riskgate's own responses.
type responder struct {
	pages  PageRenderer
	plain  PageRenderer
	logger *slog.Logger
}

// block writes the 403 block response.
func (rs *responder) block(w http.ResponseWriter, r *http.Request, reqID string, b *BlockInfo) {
	if wantsJSON(r) {
		rs.writeJSON(w, http.StatusForbidden, blockJSON{
			Decision:  decisionBlock,
			Reason:    string(b.Reason),
			Policy:    b.Policy,
			Risk:      b.Risk,
			DeviceID:  b.DeviceID,
			RequestID: reqID,
		})
		return
	}
	rs.writePage(w, Page{
		Status:    http.StatusForbidden,
		Title:     "Access blocked",
		Message:   blockMessage(b.Reason),
		RequestID: reqID,
		Block:     b,
	})
}

// error writes a non-block error: JSON for API clients, an HTML page for
// browsers, plain text otherwise. code is a short machine-readable name.
func (rs *responder) error(w http.ResponseWriter, r *http.Request, reqID string, status int, code, msg string) {
	switch {
	case wantsJSON(r):
		rs.writeJSON(w, status, errorJSON{Error: code, Message: msg, RequestID: reqID})
	case wantsHTML(r):
		rs.writePage(w, Page{Status: status, Title: http.StatusText(status), Message: msg, RequestID: reqID})
	default:
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, msg+"\nrequest id: "+reqID+"\n")
	}
}

func (rs *responder) writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // Cannot happen for the fixed structs above.
		body = []byte(`{}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func (rs *responder) writePage(w http.ResponseWriter, p Page) {
	var buf bytes.Buffer
	if err := rs.pages.RenderPage(&buf, p); err != nil {
		rs.logger.Error("render page", "status", p.Status, "request_id", p.RequestID, "error", err)
		buf.Reset()
		_ = rs.plain.RenderPage(&buf, p)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	csp := "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
	if c, ok := rs.pages.(interface{ ContentSecurityPolicy() string }); ok {
		csp = c.ContentSecurityPolicy()
	}
	h.Set("Content-Security-Policy", csp)
	w.WriteHeader(p.Status)
	_, _ = w.Write(buf.Bytes())
}
