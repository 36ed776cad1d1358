package proxy

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/riskgate/riskgate/policy"
)

//go:embed templates/*.html
var templateFS embed.FS

// PageView is the data every page template is executed with, the built-in one
// and a custom branding.template_file alike. It holds nothing internal: no
// upstream address, no policy settings beyond what the user must know.
type PageView struct {
	// Status is the HTTP status (403 for a block).
	Status int
	// Block is true on the block page, false on error pages.
	Block bool
	// Title is the page title and headline, e.g. "This device can't open
	// Mail right now" or "Sign in required".
	Title string
	// Why explains what happened in plain words (one paragraph each).
	Why []string
	// Steps say what to do, in order.
	Steps []string

	// App is the route's display name ("Mail"); empty on some error pages.
	App string
	// Reason is the decision's reason (risk_too_high, os_too_old, ...);
	// empty on error pages. Custom templates may switch on it.
	Reason string
	// Policy is the name of the policy that decided.
	Policy string
	// Risk is the device's level (secured, low, medium, high, unknown) and
	// Vendor the MTD vendor that reported it, when known.
	Risk   string
	Vendor string
	// MaxRisk is the highest level the policy allows, when known.
	MaxRisk string
	// Platform, OSVersion and MinOS describe the device's OS and the
	// minimum version the policy requires (os_too_old).
	Platform  string
	OSVersion string
	MinOS     string
	// RequestID identifies the request in riskgate's logs, for the helpdesk.
	RequestID string

	// RetryURL is the "Try again" link (the URL that was blocked);
	// SignInURL starts a browser sign-in; SignOutURL signs out (offered when
	// another account might help). Each is empty when not offered.
	RetryURL   string
	SignInURL  string
	SignOutURL string

	// SignOutForm, when set, makes the page the sign-out confirmation: a
	// POST form with a Sign out button and a Cancel link. Nil elsewhere.
	SignOutForm *SignOutForm

	// Organization, SupportURL, SupportEmail and LogoURL come from the
	// branding section of the configuration.
	Organization string
	SupportURL   string
	SupportEmail string
	LogoURL      string
}

// BlockData is what the core knows about a blocked request.
type BlockData struct {
	// App is the route's display name (route.display_name, default its name).
	App string
	// Reason and Policy come from the decision.
	Reason policy.Reason
	Policy string
	// Risk and Vendor come from the risk cache (Risk is a level name).
	Risk   string
	Vendor string
	// MaxRisk is the deciding policy's max_risk, when known.
	MaxRisk string
	// Platform and OSVersion of the device; MinOS the deciding policy's
	// minimum for that platform (os_too_old).
	Platform  string
	OSVersion string
	MinOS     string
	// RequestID for the helpdesk.
	RequestID string
	// RetryURL is the blocked request's URL (path and query), shown as "Try
	// again". Empty: no link.
	RetryURL string
	// SignOutURL, when set, is offered on device_not_owned and no_policy
	// (for example "/.riskgate/logout?rd=/").
	SignOutURL string
}

// SignOutForm is the sign-out confirmation's form.
type SignOutForm struct {
	// Action is where the form posts (the logout path).
	Action string
	// Token is the CSRF token, posted back as "csrf".
	Token string
	// Return is the validated return URL, posted back as "rd" and linked
	// as "Cancel".
	Return string
}

// SignOutData is what the sign-out confirmation page shows.
type SignOutData struct {
	// Action, Token and Return fill the form (see SignOutForm).
	Action string
	Token  string
	Return string
	// FormTargets are URLs whose origins a submission of the form may be
	// redirected to after riskgate: the identity provider's
	// end_session_endpoint and the post-logout redirect. Browsers apply
	// the CSP form-action directive to every redirect of a form
	// submission, so an origin left out stops the sign-out there. Values
	// that are not absolute http(s) URLs are ignored. Empty: 'self' only.
	FormTargets []string
}

// ErrorData is what an error page shows.
type ErrorData struct {
	// App is the route's display name, when a route matched.
	App string
	// Title and Message replace the status's default headline and text.
	Title   string
	Message string
	// RequestID for the helpdesk.
	RequestID string
	// RetryURL offers "Try again"; SignInURL offers "Sign in" (401).
	RetryURL  string
	SignInURL string
}

// Pages renders the block page and the error pages.
type Pages struct {
	branding policy.Branding
	builtin  *template.Template
	block    *template.Template // the custom template, or builtin
	csp      string
	img      string // the CSP img-src source
}

// NewPages parses the built-in templates and, when b.TemplateFile is set,
// the custom block page template (executed with a PageView). Call it when the
// configuration is loaded, so that a broken template is a config error.
func NewPages(b policy.Branding) (*Pages, error) {
	builtin, err := template.ParseFS(templateFS, "templates/page.html")
	if err != nil {
		return nil, fmt.Errorf("proxy: pages: %w", err)
	}
	p := &Pages{branding: b, builtin: builtin, block: builtin}
	if b.Organization == "" {
		p.branding.Organization = "your organization"
	}
	if b.TemplateFile != "" {
		src, err := os.ReadFile(b.TemplateFile)
		if err != nil {
			return nil, fmt.Errorf("proxy: pages: %w", err)
		}
		custom, err := template.New("custom").Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("proxy: pages: %w", err)
		}
		// Execute once with sample data so that a template that cannot run
		// (unknown field, bad call) fails at load, not in front of a user.
		var buf bytes.Buffer
		if err := custom.Execute(&buf, p.blockPage(sampleBlock())); err != nil {
			return nil, fmt.Errorf("proxy: pages: %s: %w", b.TemplateFile, err)
		}
		p.block = custom
	}
	img := "'none'"
	if u, err := url.Parse(b.LogoURL); err == nil && b.LogoURL != "" && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		img = u.Scheme + "://" + u.Host
	}
	p.img = img
	p.csp = p.cspWithFormAction("'none'")
	return p, nil
}

// cspWithFormAction is the pages' CSP with the form-action sources given.
func (p *Pages) cspWithFormAction(formAction string) string {
	return "default-src 'none'; style-src 'unsafe-inline'; img-src " + p.img +
		"; base-uri 'none'; form-action " + formAction + "; frame-ancestors 'none'"
}

// cspOrigin returns the origin of an absolute http(s) URL as a CSP source
// expression, or false when raw is not one (or holds characters a CSP
// source cannot, so that nothing can be injected into the header).
func cspOrigin(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", false
	}
	for _, c := range u.Host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return "", false
		}
	}
	return u.Scheme + "://" + strings.ToLower(u.Host), true
}

func sampleBlock() BlockData {
	return BlockData{App: "Mail", Reason: policy.ReasonRiskTooHigh, Policy: "sample", Risk: "high",
		Vendor: "vendor", MaxRisk: "low", RequestID: "sample", RetryURL: "/"}
}

// Block writes the 403 block page. A custom template that fails at run time
// falls back to the built-in page; the error is returned for the log.
func (p *Pages) Block(w http.ResponseWriter, d BlockData) error {
	page := p.blockPage(d)
	err := p.write(w, p.block, page, p.csp)
	if err != nil && p.block != p.builtin {
		return fmt.Errorf("proxy: block page template: %w", p.write(w, p.builtin, page, p.csp))
	}
	return err
}

// Error writes an error page with status: 400, 401 (sign in required), 404,
// 502 and 503 have their own default words, anything else is generic.
func (p *Pages) Error(w http.ResponseWriter, status int, d ErrorData) error {
	return p.write(w, p.builtin, p.errorPage(status, d), p.csp)
}

// SignOut writes the 200 sign-out confirmation page: "Sign out of
// <organization>?", a form that posts d.Token and d.Return to d.Action, and
// a Cancel link to d.Return. Its CSP allows form-action 'self' and the
// origins of d.FormTargets, and nothing else.
func (p *Pages) SignOut(w http.ResponseWriter, d SignOutData) error {
	sources := []string{"'self'"}
	for _, t := range d.FormTargets {
		if o, ok := cspOrigin(t); ok && !slices.Contains(sources, o) {
			sources = append(sources, o)
		}
	}
	page := p.brand(&PageView{
		Status: http.StatusOK,
		Title:  "Sign out of " + p.branding.Organization + "?",
		Why: []string{"You'll be signed out of the " + p.branding.Organization +
			" apps in this browser, and need to sign in again to open them."},
		SignOutForm: &SignOutForm{Action: d.Action, Token: d.Token, Return: d.Return},
	})
	return p.write(w, p.builtin, page, p.cspWithFormAction(strings.Join(sources, " ")))
}

// write renders page into a buffer first, so that a template error never
// leaves half a page behind a 200.
func (p *Pages) write(w http.ResponseWriter, t *template.Template, page *PageView, csp string) error {
	var buf bytes.Buffer
	if err := t.Execute(&buf, page); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", csp)
	w.WriteHeader(page.Status)
	_, err := w.Write(buf.Bytes())
	return err
}

func (p *Pages) brand(page *PageView) *PageView {
	page.Organization = p.branding.Organization
	page.SupportURL = p.branding.SupportURL
	page.SupportEmail = p.branding.SupportEmail
	page.LogoURL = p.branding.LogoURL
	return page
}

// contactIT is the last step of most pages.
func (p *Pages) contactIT() string {
	switch {
	case p.branding.SupportURL != "" || p.branding.SupportEmail != "":
		return "If it still doesn't work, contact " + p.branding.Organization + " IT support (below) and give them the request id."
	default:
		return "If it still doesn't work, contact " + p.branding.Organization + " IT support and give them the request id."
	}
}

func (p *Pages) blockPage(d BlockData) *PageView {
	app := d.App
	if app == "" {
		app = "this app"
	}
	page := &PageView{
		Status: http.StatusForbidden, Block: true,
		Title: "This device can't open " + app + " right now",
		App:   d.App, Reason: string(d.Reason), Policy: d.Policy,
		Risk: d.Risk, Vendor: d.Vendor, MaxRisk: d.MaxRisk,
		Platform: d.Platform, OSVersion: d.OSVersion, MinOS: d.MinOS,
		RequestID: d.RequestID, RetryURL: d.RetryURL,
	}
	vendorApp := "your organization's threat-defense app"
	if d.Vendor != "" {
		vendorApp = "the " + d.Vendor + " threat-defense app"
	}
	platform := platformName(d.Platform)
	switch d.Reason {
	case policy.ReasonRiskTooHigh:
		why := "Your organization's threat-defense service"
		if d.Vendor != "" {
			why += " (" + d.Vendor + ")"
		}
		why += " rates this device's risk as " + orUnknown(d.Risk) + "."
		if d.MaxRisk != "" {
			why += " " + app + " only opens on devices rated " + d.MaxRisk + " or lower."
		}
		page.Why = []string{why, "This usually means a malicious app, a risky network or a security setting was found on the device."}
		page.Steps = []string{
			"Open " + vendorApp + " on this device and resolve every threat it shows (remove the app it names, leave the unsafe Wi-Fi, or change the setting).",
			"Wait a few minutes for the app to report that the device is safe, then try again. Access comes back on its own.",
			p.contactIT(),
		}
	case policy.ReasonOSTooOld:
		why := "This device's operating system is too old."
		if d.OSVersion != "" && d.MinOS != "" {
			why = "This device runs " + platform + " " + d.OSVersion + ", but " + app + " needs " + platform + " " + d.MinOS + " or later."
		} else if d.MinOS != "" {
			why = app + " needs " + platform + " " + d.MinOS + " or later."
		}
		page.Why = []string{why, "Older versions miss security fixes."}
		page.Steps = []string{updateStep(d.Platform), "When the update is installed, open " + vendorApp + " once so it reports the new version, then try again.", p.contactIT()}
	case policy.ReasonDeviceUnknown:
		page.Why = []string{"Your organization's threat-defense service has no report about this device yet, so it can't tell whether the device is safe."}
		page.Steps = []string{
			"Install " + vendorApp + " on this device if it isn't there, open it and sign in with your work account.",
			"Wait a few minutes until the app shows that the device is protected, then try again.",
			p.contactIT(),
		}
	case policy.ReasonRiskStale:
		page.Why = []string{"The security status of this device couldn't be confirmed recently. This is usually a temporary problem on the service side, not on your device."}
		page.Steps = []string{"Open " + vendorApp + " so it checks in, wait a few minutes and try again.", p.contactIT()}
	case policy.ReasonDeviceMissing:
		page.Title = "We couldn't recognise this device"
		page.Why = []string{app + " only opens on devices your organization manages, and this request didn't say which device it came from."}
		page.Steps = []string{
			"Open " + app + " from your organization's managed browser or app on an enrolled device (for example the company portal, or the browser set up with your work profile).",
			"If this device isn't enrolled yet, enroll it with your organization's company portal app.",
			p.contactIT(),
		}
	case policy.ReasonDeviceNotOwned:
		page.Why = []string{"This device is registered to a different user than the account you signed in with."}
		page.Steps = []string{"Sign out and sign in with the account this device belongs to, or use a device registered to you.", "If this is your device, ask IT to register it to your account."}
		page.SignOutURL = d.SignOutURL
	case policy.ReasonPlatformBlocked:
		what := "this kind of device"
		if d.Platform != "" {
			what = platform + " devices"
		}
		page.Why = []string{app + " can't be opened from " + what + "."}
		page.Steps = []string{"Use another device, for example your work computer or a supported phone.", p.contactIT()}
	case policy.ReasonNoPolicy:
		page.Title = "You can't open " + app + " right now"
		page.Why = []string{"No access rule allows your account to open " + app + " from this device."}
		page.Steps = []string{"If you think you should have access, contact " + p.branding.Organization + " IT support and give them the request id."}
		page.SignOutURL = d.SignOutURL
	default:
		page.Why = []string{"Your organization's access rules don't allow this device to open " + app + " right now."}
		page.Steps = []string{p.contactIT()}
	}
	return p.brand(page)
}

func (p *Pages) errorPage(status int, d ErrorData) *PageView {
	page := &PageView{Status: status, App: d.App, RequestID: d.RequestID, RetryURL: d.RetryURL, SignInURL: d.SignInURL}
	app := d.App
	if app == "" {
		app = "The app"
	}
	switch status {
	case http.StatusUnauthorized:
		page.Title = "Sign in required"
		page.Why = []string{"You need to sign in with your " + p.branding.Organization + " account to continue."}
		page.Steps = []string{"Tap Sign in and use your work account."}
	case http.StatusNotFound:
		page.Title = "Page not found"
		page.Why = []string{"There is nothing at this address."}
		page.Steps = []string{"Check the address, or go back and try another link."}
	case http.StatusBadRequest:
		page.Title = "Something is wrong with this request"
		page.Why = []string{"The request couldn't be understood."}
		page.Steps = []string{"Go back and try again.", p.contactIT()}
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		page.Title = app + " isn't responding"
		page.Why = []string{app + " didn't answer in time or returned an error. Your device and account are fine."}
		page.Steps = []string{"Wait a minute and try again.", p.contactIT()}
	case http.StatusServiceUnavailable:
		page.Title = "Temporarily unavailable"
		page.Why = []string{"The service is busy or starting up."}
		page.Steps = []string{"Wait a minute and try again.", p.contactIT()}
	default:
		page.Title = "Something went wrong"
		page.Why = []string{"An unexpected error happened on our side."}
		page.Steps = []string{"Try again in a minute.", p.contactIT()}
	}
	if d.Title != "" {
		page.Title = d.Title
	}
	if d.Message != "" {
		page.Why = []string{d.Message}
	}
	return p.brand(page)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// platformName spells a platform as users know it.
func platformName(p string) string {
	switch strings.ToLower(p) {
	case "ios":
		return "iOS"
	case "ipados":
		return "iPadOS"
	case "android":
		return "Android"
	case "windows":
		return "Windows"
	case "macos":
		return "macOS"
	case "linux":
		return "Linux"
	case "":
		return "the operating system"
	default:
		return p
	}
}

func updateStep(platform string) string {
	switch strings.ToLower(platform) {
	case "ios", "ipados":
		return "Update the device: open Settings › General › Software Update and install the latest version."
	case "android":
		return "Update the device: open Settings › System › Software update (or Settings › Software update) and install the latest version."
	case "windows":
		return "Update the device: open Settings › Windows Update and install the latest updates."
	case "macos":
		return "Update the device: open System Settings › General › Software Update and install the latest version."
	default:
		return "Update the device's operating system to the latest version in its settings."
	}
}

// RenderPage makes Pages a PageRenderer for the core's responder: it writes
// the body of p with the branded templates (the caller sets the status and
// headers). A block uses the block page (custom template included), any
// other status the matching error page.
func (p *Pages) RenderPage(w io.Writer, pg Page) error {
	var view *PageView
	t := p.builtin
	if pg.Block != nil {
		view = p.blockPage(BlockData{
			App: pg.Block.RouteDisplayName, Reason: pg.Block.Reason, Policy: pg.Block.Policy,
			Risk: pg.Block.Risk, RequestID: pg.RequestID,
			Vendor: pg.Block.Vendor, MaxRisk: pg.Block.MaxRisk, Platform: pg.Block.Platform,
			OSVersion: pg.Block.OSVersion, MinOS: pg.Block.MinOS, RetryURL: pg.Block.RetryURL,
			SignOutURL: pg.Block.SignOutURL,
		})
		t = p.block
	} else {
		view = p.errorPage(pg.Status, ErrorData{Message: pg.Message, RequestID: pg.RequestID})
	}
	view.Status = pg.Status
	if err := t.Execute(w, view); err != nil {
		if t != p.builtin {
			return fmt.Errorf("proxy: block page template: %w", err)
		}
		return err
	}
	return nil
}

// ContentSecurityPolicy is the CSP header value for the pages: inline
// styles only, images from the configured logo's origin.
func (p *Pages) ContentSecurityPolicy() string { return p.csp }
