package policy

import "time"

// Config is riskgate's whole configuration file (DESIGN.md "Configuration").
// A Config is immutable once Load has returned it: a reload builds a new one.
type Config struct {
	// Path is the file the config was loaded from; used in messages.
	Path string `yaml:"-"`
	// Warnings are things that load but are probably mistakes (a route no
	// policy names, a device source that can never yield an id), with
	// their positions. validate prints them; serve logs them.
	Warnings Errors `yaml:"-"`

	Server   Server   `yaml:"server"`
	Auth     Auth     `yaml:"auth"`
	Devices  Devices  `yaml:"devices"`
	Risk     Risk     `yaml:"risk"`
	Routes   []Route  `yaml:"routes"`
	Policies []Policy `yaml:"policies"`
	Branding Branding `yaml:"branding"`
}

// Server configures the listeners.
type Server struct {
	// Listen is the proxy listener address. Default "127.0.0.1:8080".
	Listen string `yaml:"listen"`
	// AdminListen serves /metrics, /healthz and /readyz. Default
	// "127.0.0.1:9090".
	AdminListen string `yaml:"admin_listen"`
	// TLS, when CertFile and KeyFile are set, serves the proxy listener over
	// TLS. ClientCAFile additionally requests and verifies client certificates.
	TLS TLS `yaml:"tls"`
	// ShutdownTimeout bounds how long SIGTERM waits for in-flight requests.
	// Default 15s; zero means the default.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// UpstreamTimeout bounds the wait for an upstream's response headers.
	// Default 30s; zero means the default.
	UpstreamTimeout Duration `yaml:"upstream_timeout"`
	// BodyIdleTimeout bounds how long a request body may send nothing
	// (a slow-body attack holds a connection to the upstream); a large
	// upload that keeps sending is never cut. Default 60s.
	BodyIdleTimeout Duration `yaml:"body_idle_timeout"`
}

// TLS names PEM files. Empty means plain HTTP.
type TLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// Auth configures the OIDC identity provider.
type Auth struct {
	// Issuer is the OIDC issuer URL; discovery is fetched from it. Required.
	Issuer string `yaml:"issuer"`
	// ClientID is riskgate's OAuth client id. Required.
	ClientID string `yaml:"client_id"`
	// ClientSecret for the authorization code flow; ClientSecretFile reads it
	// from a file instead.
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// RedirectURL is riskgate's /.riskgate/callback as the browser sees it.
	RedirectURL string `yaml:"redirect_url"`
	// Scopes requested at sign-in. Default [openid, email, profile].
	Scopes []string `yaml:"scopes"`
	// Audiences are the accepted "aud" values of bearer tokens. Default
	// [ClientID].
	Audiences []string `yaml:"audiences"`
	// UserClaim names the user. Default "email".
	UserClaim string `yaml:"user_claim"`
	// GroupsClaim holds the user's groups (a list or a single string).
	// Default "groups".
	GroupsClaim string `yaml:"groups_claim"`
	// Session configures the browser session cookie.
	Session Session `yaml:"session"`
}

// Session configures the encrypted session cookie.
type Session struct {
	// Secret derives the cookie key. SecretFile reads it from a file.
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
	// Secrets are older secrets still accepted to open cookies (rotation);
	// Secret seals.
	Secrets []string `yaml:"secrets"`
	// TTL is the session lifetime. Default 8h.
	TTL Duration `yaml:"ttl"`
	// CookieName is the session cookie's name. Default "__Host-riskgate"
	// when redirect_url is https (the prefix binds the cookie to this host),
	// else "_riskgate".
	CookieName string `yaml:"cookie_name"`
}

// Devices configures how the device of a request is identified.
type Devices struct {
	// Sources are tried in order; the first that yields an id wins.
	Sources []DeviceSource `yaml:"sources"`
}

// DeviceSource is exactly one of its fields.
type DeviceSource struct {
	// Claim names a token claim holding the device id.
	Claim string `yaml:"claim,omitempty"`
	// ClientCert reads the id from the verified TLS client certificate.
	ClientCert *ClientCertSource `yaml:"client_cert,omitempty"`
	// Header reads the id from a header set by a trusted front proxy.
	Header *HeaderSource `yaml:"header,omitempty"`
	// Query names a query parameter (Exchange ActiveSync's "DeviceId").
	Query string `yaml:"query,omitempty"`

	// Line and Column locate the source in the file, for messages.
	Line, Column int `yaml:"-"`
}

// ClientCertSource reads a device id from a client certificate.
type ClientCertSource struct {
	// SANURIPrefix selects the SAN URI carrying the id, e.g. "urn:device:".
	// Empty: the subject CN is the id.
	SANURIPrefix string `yaml:"san_uri_prefix"`
}

// HeaderSource reads a device id from a request header.
type HeaderSource struct {
	// Name of the header. Required.
	Name string `yaml:"name"`
	// TrustedCIDRs are the peers allowed to set it. Empty: no peer is
	// trusted and the source never yields an id.
	TrustedCIDRs []string `yaml:"trusted_cidrs"`
}

// Risk configures the risk cache and its vendors.
type Risk struct {
	// MaxAge: a vendor without a successful sync for this long makes its
	// devices stale. Default 24h; zero means the default.
	MaxAge Duration `yaml:"max_age"`
	// CacheSize bounds the number of cached devices per vendor. Default
	// 100000.
	CacheSize int `yaml:"cache_size"`
	// StateFile, if set, persists the cache across restarts.
	StateFile string `yaml:"state_file"`
	// StateInterval is how often the state file is written. Default 1m.
	StateInterval Duration `yaml:"state_interval"`
	// Vendors are the MTD sources.
	Vendors []Vendor `yaml:"vendors"`
}

// Vendor is one MTD source.
type Vendor struct {
	// Name identifies the vendor in metrics, logs and the webhook path.
	Name string `yaml:"name"`
	// Type is generic, graph, lookout, zimperium or checkpoint.
	Type string `yaml:"type"`
	// URL is the vendor API's base (generic: the device list URL).
	URL string `yaml:"url"`
	// Token is a static bearer token (generic); TokenFile reads it.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// TokenURL, ClientID, ClientSecret(File) and Scopes configure an OAuth2
	// client-credentials grant (graph, lookout).
	TokenURL         string   `yaml:"token_url"`
	ClientID         string   `yaml:"client_id"`
	ClientSecret     string   `yaml:"client_secret"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	Scopes           []string `yaml:"scopes"`
	// APIKey(File) for vendors that authenticate with a key.
	APIKey     string `yaml:"api_key"`
	APIKeyFile string `yaml:"api_key_file"`
	// Interval between syncs. Default 30s; zero means the default.
	Interval Duration `yaml:"interval"`
	// Timeout bounds each HTTP request to the vendor. Default 30s; zero
	// means the default.
	Timeout Duration `yaml:"timeout"`
	// PageSize is the page size asked for. Default 1000.
	PageSize int `yaml:"page_size"`
	// WebhookSecret enables POST /.riskgate/webhook/{name};
	// WebhookSecretFile reads it from a file.
	WebhookSecret     string `yaml:"webhook_secret"`
	WebhookSecretFile string `yaml:"webhook_secret_file"`

	Line, Column int `yaml:"-"`
}

// Route maps a host and path prefix to an upstream.
type Route struct {
	// Name identifies the route in policies, metrics and logs. Required.
	Name string `yaml:"name"`
	// Host to match (without port). Empty or "*": any host.
	Host string `yaml:"host"`
	// PathPrefix to match; the longest matching prefix wins. Default "/".
	PathPrefix string `yaml:"path_prefix"`
	// Upstream is the URL requests are forwarded to. Required.
	Upstream string `yaml:"upstream"`
	// DisplayName is shown on the block page ("Mail"). Default Name.
	DisplayName string `yaml:"display_name"`

	Line, Column int `yaml:"-"`
}

// Mode says whether a failing policy blocks.
type Mode string

// Policy modes.
const (
	ModeEnforce    Mode = "enforce"
	ModeReportOnly Mode = "report-only"
)

// Action is what on_unknown and on_stale do.
type Action string

// Actions.
const (
	ActionBlock Action = "block"
	ActionAllow Action = "allow"
)

// Policy is one conditional-access policy.
type Policy struct {
	// Name identifies the policy in metrics, logs and the block response.
	Name string `yaml:"name"`
	// Mode is enforce (default) or report-only.
	Mode Mode `yaml:"mode"`
	// Routes the policy applies to; empty: every route.
	Routes []string `yaml:"routes"`
	// Groups the policy applies to; empty: every user.
	Groups []string `yaml:"groups"`
	// Platforms the policy applies to (ios, android, windows, macos, ...);
	// empty: every platform.
	Platforms []string `yaml:"platforms"`
	// ExcludeGroups are never subject to the policy (break-glass).
	ExcludeGroups []string `yaml:"exclude_groups"`
	// MaxRisk is the highest level that passes. Default "low". "high"
	// passes every level but still requires the device to be known
	// (on_unknown allow is refused with it).
	MaxRisk string `yaml:"max_risk"`
	// RequireDevice: no device id fails with device_missing. Default true.
	RequireDevice *bool `yaml:"require_device"`
	// RequireOwnerMatch: a device registered to another user fails with
	// device_not_owned. Default true.
	RequireOwnerMatch *bool `yaml:"require_owner_match"`
	// MinOS is the minimum OS version per platform ("16.10" > "16.9").
	MinOS map[string]string `yaml:"min_os"`
	// BlockPlatforms fail with platform_blocked.
	BlockPlatforms []string `yaml:"block_platforms"`
	// OnUnknown decides a device no vendor has reported. Default block.
	OnUnknown Action `yaml:"on_unknown"`
	// OnStale decides a device whose vendor data is stale. Default block.
	OnStale Action `yaml:"on_stale"`
	// GracePeriod lets a device that just turned risky keep access this
	// long. Default 0.
	GracePeriod Duration `yaml:"grace_period"`

	Line, Column int `yaml:"-"`
}

// Branding customises the block and error pages.
type Branding struct {
	// Organization name shown on pages. Default "your organization".
	Organization string `yaml:"organization"`
	// SupportURL and SupportEmail tell users where to get help.
	SupportURL   string `yaml:"support_url"`
	SupportEmail string `yaml:"support_email"`
	// LogoURL is shown at the top of pages.
	LogoURL string `yaml:"logo_url"`
	// TemplateFile replaces the built-in block page template.
	TemplateFile string `yaml:"template_file"`
}

// Duration is a time.Duration written as "30s", "1h30m" in YAML.
type Duration struct{ time.Duration }
