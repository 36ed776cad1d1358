package vendorsim

import (
	"html/template"
	"net/http"

	"github.com/riskgate/riskgate/policy"
)

// DemoAPIPath is where Demo serves the generic pull API.
const DemoAPIPath = "/v1/devices"

// Demo is the simulated MTD vendor of `riskgate demo`: the generic pull API
// at DemoAPIPath (with delta cursors, so a flipped device shows up in the
// next delta sync), and at / a phone-friendly page listing the devices with
// buttons that set each one's risk (POST /set, form fields device and
// risk).
type Demo struct {
	store *Store
	api   *Generic
	mux   *http.ServeMux
}

// NewDemo returns the demo vendor over store; token guards the API (empty:
// open).
func NewDemo(store *Store, token string) *Demo {
	d := &Demo{store: store, api: NewGeneric(store, token), mux: http.NewServeMux()}
	d.mux.Handle("GET "+DemoAPIPath, d.api)
	d.mux.HandleFunc("GET /{$}", d.page)
	d.mux.HandleFunc("POST /set", d.set)
	return d
}

// API is the generic API simulator, for fault injection.
func (d *Demo) API() *Generic { return d.api }

// ServeHTTP serves the page, the form and the API.
func (d *Demo) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.mux.ServeHTTP(w, r) }

type demoRow struct {
	Device
	LevelName string
}

type demoData struct {
	Devices []demoRow
	Levels  []string
	APIPath string
}

func (d *Demo) page(w http.ResponseWriter, r *http.Request) {
	data := demoData{
		Levels:  []string{"secured", "low", "medium", "high"},
		APIPath: DemoAPIPath,
	}
	for _, dev := range d.store.Devices() {
		data.Devices = append(data.Devices, demoRow{Device: dev, LevelName: dev.Level.String()})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = demoPage.Execute(w, data)
}

func (d *Demo) set(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	l, err := policy.ParseLevel(r.PostForm.Get("risk"))
	if err != nil || l == policy.LevelUnknown {
		http.Error(w, "risk must be secured, low, medium or high", http.StatusBadRequest)
		return
	}
	if !d.store.SetLevel(r.PostForm.Get("device"), l) {
		http.Error(w, "no such device", http.StatusNotFound)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

var demoPage = template.Must(template.New("demo").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Simulated MTD vendor</title>
<style>
body{font-family:system-ui,-apple-system,sans-serif;margin:0;background:#f4f5f7;color:#1d2430}
header{background:#5b3cc4;color:#fff;padding:16px}
header h1{margin:0;font-size:1.3em}
header p{margin:4px 0 0;font-size:.9em;opacity:.9}
main{max-width:640px;margin:0 auto;padding:12px}
.card{background:#fff;border-radius:10px;padding:14px;margin:12px 0;box-shadow:0 1px 3px rgba(0,0,0,.12)}
.id{font-family:ui-monospace,monospace;font-size:.95em;word-break:break-all}
.meta{color:#5a6372;font-size:.9em;margin:4px 0 10px}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;font-size:.85em;color:#fff}
.unknown{background:#7a808a}.secured{background:#1e8e3e}.low{background:#b58a00}.medium{background:#e8710a}.high{background:#d93025}
form{display:flex;gap:6px;flex-wrap:wrap;margin:0}
button{flex:1 1 20%;min-height:44px;border:0;border-radius:8px;font-size:1em;color:#fff;cursor:pointer}
button[aria-pressed=true]{outline:3px solid #1d2430}
footer{color:#5a6372;font-size:.8em;text-align:center;padding:16px}
</style>
</head>
<body>
<header>
<h1>Simulated MTD vendor</h1>
<p>Demo only: not a real Mobile Threat Defense service. Set a device's risk, and riskgate picks it up on its next sync.</p>
</header>
<main>
{{- range .Devices}}
<section class="card">
<div class="id">{{.ID}}</div>
<div class="meta">{{.User}} · {{.Platform}} {{.OSVersion}} · risk <span class="badge {{.LevelName}}">{{.LevelName}}</span></div>
<form method="post" action="/set">
<input type="hidden" name="device" value="{{.ID}}">
{{- $cur := .LevelName}}
{{- range $.Levels}}
<button class="{{.}}" name="risk" value="{{.}}" aria-pressed="{{eq . $cur}}">{{.}}</button>
{{- end}}
</form>
</section>
{{- else}}
<p class="card">No devices yet.</p>
{{- end}}
</main>
<footer>Generic pull API: GET {{.APIPath}}?cursor=&amp;limit=</footer>
</body>
</html>
`))
