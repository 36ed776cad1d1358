// Package dextest runs a real Dex (github.com/dexidp/dex) identity provider
// inside a test, as a library: memory storage, its password database
// connector ("local") with static users, registered clients, and Dex's own
// HTML login pages, on an httptest server at 127.0.0.1. It also drives those
// pages like a browser would (DexLogin), so that an end-to-end test can sign
// in through riskgate against an identity provider riskgate did not write.
package dextest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	gosundheit "github.com/AppsFlyer/go-sundheit"
	"github.com/dexidp/dex/server"
	"github.com/dexidp/dex/server/authflow"
	"github.com/dexidp/dex/server/connectors"
	"github.com/dexidp/dex/server/signer"
	"github.com/dexidp/dex/storage"
	"github.com/dexidp/dex/storage/memory"
	"golang.org/x/crypto/bcrypt"
)

// User is a user of Dex's password database.
type User struct {
	Email    string
	Password string
	// Name is the "name" claim; empty means the part of Email before "@".
	Name string
	// Groups is the "groups" claim, issued when the "groups" scope is asked.
	Groups []string
}

// Client is an OAuth 2.0 client registered in Dex.
type Client struct {
	ID, Secret             string
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
}

// Options configure Start. The zero value gives the defaults below.
type Options struct {
	// Clients are registered at start. More can be added with AddClient
	// once their redirect URI is known.
	Clients []Client
	// Users default to one user, DefaultEmail with DefaultPassword, in
	// group "staff".
	Users []User
	// ShowApproval keeps Dex's "Grant Access" page (the default skips it, as
	// most deployments do); DexLogin handles both.
	ShowApproval bool
	// Logger receives Dex's logs; nil discards them.
	Logger *slog.Logger
	// Now is Dex's clock; nil means time.Now.
	Now func() time.Time
}

// The user Start creates when Options.Users is empty.
const (
	DefaultEmail    = "alice@corp.example"
	DefaultPassword = "password"
)

// Dex is a running Dex server.
type Dex struct {
	// URL is the issuer URL, e.g. http://127.0.0.1:41234/dex.
	URL string
	// Server is the httptest server Dex listens on.
	Server  *httptest.Server
	storage storage.Storage
}

// Start runs Dex until the test ends. PKCE is enforced, as it is for
// riskgate's clients in production.
func Start(t testing.TB, opts Options) *Dex {
	t.Helper()
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	users := opts.Users
	if len(users) == 0 {
		users = []User{{Email: DefaultEmail, Password: DefaultPassword, Name: "Alice", Groups: []string{"staff"}}}
	}

	var handler atomic.Pointer[server.Server]
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := handler.Load(); h != nil {
			h.ServeHTTP(w, r)
			return
		}
		http.Error(w, "dex is starting", http.StatusServiceUnavailable)
	}))
	t.Cleanup(ts.Close)
	// A path on the issuer, as real deployments often have, checks that
	// riskgate does not assume the issuer is an origin.
	issuer := ts.URL + "/dex"

	passwords := make([]storage.Password, len(users))
	for i, u := range users {
		// bcrypt.MinCost is refused by Dex (it wants at least 10).
		hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), 10)
		if err != nil {
			t.Fatalf("dextest: hash password: %v", err)
		}
		name := u.Name
		if name == "" {
			name = u.Email
			for j := range name {
				if name[j] == '@' {
					name = name[:j]
					break
				}
			}
		}
		passwords[i] = storage.Password{
			Email: u.Email, Hash: hash, Username: name, Name: name,
			UserID: fmt.Sprintf("user-%d", i+1), Groups: u.Groups,
		}
	}
	mem := memory.New(logger)
	var store storage.Storage = storage.WithStaticPasswords(mem, passwords, logger)
	store = storage.WithStaticConnectors(store, []storage.Connector{{
		// The password database connector; Dex's EnablePasswordDB config
		// option does exactly this.
		ID: connectors.LocalConnector, Name: "Email", Type: connectors.LocalConnector,
	}})

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	idTokensValidFor := time.Hour
	sig, err := (&signer.LocalConfig{KeysRotationPeriod: "6h"}).Open(ctx, store, idTokensValidFor, func() time.Time { return now().UTC() }, logger)
	if err != nil {
		t.Fatalf("dextest: open signer: %v", err)
	}
	srv, err := server.NewServer(ctx, server.Config{
		Issuer:             issuer,
		Storage:            store,
		Signer:             sig,
		SkipApprovalScreen: !opts.ShowApproval,
		PKCE:               authflow.PKCEConfig{Enforce: true},
		IDTokensValidFor:   idTokensValidFor,
		Now:                func() time.Time { return now().UTC() },
		Logger:             logger,
		HealthChecker:      gosundheit.New(),
		Web:                server.WebConfig{Issuer: "dextest"},
	})
	if err != nil {
		t.Fatalf("dextest: start dex: %v", err)
	}
	handler.Store(srv)
	d := &Dex{URL: issuer, Server: ts, storage: mem}
	for _, c := range opts.Clients {
		d.AddClient(t, c)
	}
	return d
}

// AddClient registers a client, for a test that learns its redirect URI
// only after Dex started.
func (d *Dex) AddClient(t testing.TB, c Client) {
	t.Helper()
	err := d.storage.CreateClient(context.Background(), storage.Client{
		ID: c.ID, Secret: c.Secret, Name: c.ID,
		RedirectURIs: c.RedirectURIs, PostLogoutRedirectURIs: c.PostLogoutRedirectURIs,
	})
	if err != nil {
		t.Fatalf("dextest: add client %q: %v", c.ID, err)
	}
}
