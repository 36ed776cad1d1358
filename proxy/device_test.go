package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/policy"
)

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func verifiedCert(cn string, uris ...string) *tls.ConnectionState {
	c := &x509.Certificate{Subject: pkix.Name{CommonName: cn}}
	for _, u := range uris {
		c.URIs = append(c.URIs, mustURL(u))
	}
	return &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{c}}}
}

func TestDeviceIdentify(t *testing.T) {
	all := policy.Devices{Sources: []policy.DeviceSource{
		{Claim: "deviceid"},
		{ClientCert: &policy.ClientCertSource{SANURIPrefix: "urn:device:"}},
		{Header: &policy.HeaderSource{Name: "x-device-id", TrustedCIDRs: []string{"10.0.0.0/8", "fd00::/8", "192.0.2.1"}}},
		{Query: "DeviceId"},
	}}
	cnOnly := policy.Devices{Sources: []policy.DeviceSource{{ClientCert: &policy.ClientCertSource{}}}}
	withClaim := &Identity{User: alice, Claims: map[string]any{"deviceid": "d-claim"}}
	tests := []struct {
		name    string
		devices policy.Devices
		id      *Identity
		peer    string
		target  string
		header  http.Header
		tls     *tls.ConnectionState
		want    Device
	}{
		{name: "claim first", devices: all, id: withClaim, peer: "10.0.0.1:1", target: "/?DeviceId=d-query",
			header: http.Header{"X-Device-Id": {"d-header"}}, tls: verifiedCert("cn", "urn:device:d-cert"),
			want: Device{ID: "d-claim", Source: "claim"}},
		{name: "client cert SAN URI", devices: all, id: &Identity{User: alice}, tls: verifiedCert("cn", "https://x.example/", "urn:device:d-cert"),
			target: "/?DeviceId=d-query", want: Device{ID: "d-cert", Source: "client_cert"}},
		{name: "client cert without matching SAN", devices: all, tls: verifiedCert("cn", "urn:other:x"),
			target: "/?DeviceId=d-query", want: Device{ID: "d-query", Source: "query", SelfAsserted: true}},
		{name: "unverified client cert is ignored", devices: cnOnly, tls: &tls.ConnectionState{}, target: "/"},
		{name: "client cert CN", devices: cnOnly, tls: verifiedCert("d-cn"), target: "/", want: Device{ID: "d-cn", Source: "client_cert"}},
		{name: "header from trusted peer", devices: all, peer: "10.9.9.9:443", header: http.Header{"X-Device-Id": {" d-header "}},
			target: "/?DeviceId=d-query", want: Device{ID: "d-header", Source: "header"}},
		{name: "header from trusted IPv6 peer", devices: all, peer: "[fd00::1]:443", header: http.Header{"X-Device-Id": {"d-header"}},
			target: "/", want: Device{ID: "d-header", Source: "header"}},
		{name: "header from trusted single address", devices: all, peer: "192.0.2.1:443", header: http.Header{"X-Device-Id": {"d-header"}},
			target: "/", want: Device{ID: "d-header", Source: "header"}},
		{name: "header from untrusted peer", devices: all, peer: "192.0.2.2:443", header: http.Header{"X-Device-Id": {"d-header"}},
			target: "/?DeviceId=d-query", want: Device{ID: "d-query", Source: "query", SelfAsserted: true}},
		{name: "repeated header", devices: all, peer: "10.0.0.1:1", header: http.Header{"X-Device-Id": {"a", "b"}}, target: "/"},
		{name: "query", devices: all, target: "/Microsoft-Server-ActiveSync?User=alice&DeviceId=ABC123&Cmd=Ping",
			want: Device{ID: "ABC123", Source: "query", SelfAsserted: true}},
		{name: "control character refused, next source used", devices: all, id: &Identity{Claims: map[string]any{"deviceid": "d\n1"}},
			target: "/?DeviceId=d-query", want: Device{ID: "d-query", Source: "query", SelfAsserted: true}},
		{name: "too long refused", devices: all, id: &Identity{Claims: map[string]any{"deviceid": strings.Repeat("x", 257)}}, target: "/"},
		{name: "longest accepted", devices: all, id: &Identity{Claims: map[string]any{"deviceid": strings.Repeat("x", 256)}}, target: "/",
			want: Device{ID: strings.Repeat("x", 256), Source: "claim"}},
		{name: "non-string claim", devices: all, id: &Identity{Claims: map[string]any{"deviceid": 42}}, target: "/"},
		{name: "invalid UTF-8 refused", devices: all, target: "/?DeviceId=%ff%fe"},
		{name: "no sources", devices: policy.Devices{}, id: withClaim, target: "/?DeviceId=x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := compileDeviceSources(tc.devices)
			require.NoError(t, err)
			r := httptest.NewRequest(http.MethodGet, "http://mail.test"+tc.target, nil)
			r.RemoteAddr = tc.peer
			if tc.peer == "" {
				r.RemoteAddr = "203.0.113.5:1234"
			}
			r.TLS = tc.tls
			for k, v := range tc.header {
				r.Header[k] = v
			}
			assert.Equal(t, tc.want, ds.identify(r, tc.id))
		})
	}
}

func TestCompileDeviceSourcesErrors(t *testing.T) {
	_, err := compileDeviceSources(policy.Devices{Sources: []policy.DeviceSource{
		{Header: &policy.HeaderSource{Name: "X", TrustedCIDRs: []string{"not-a-cidr"}}},
		{},
	}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "devices.sources[0]")
	assert.Contains(t, err.Error(), "devices.sources[1]")
}

// TestClientCertEndToEnd identifies the device from a real mutual-TLS
// connection: a client certificate with the device id in a SAN URI, as
// Intune's SCEP/PKCS profiles issue.
func TestClientCertEndToEnd(t *testing.T) {
	config := strings.Replace(testConfig, "    - claim: deviceid\n", "    - client_cert: {san_uri_prefix: \"urn:device:\"}\n", 1)
	h := newHarness(t, config)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test device CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "alice's phone"},
		URIs:      []*url.URL{mustURL("urn:device:d-ok")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	require.NoError(t, err)

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv := httptest.NewUnstartedServer(h.proxy)
	srv.TLS = &tls.Config{ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	client := srv.Client()
	client.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{{
		Certificate: [][]byte{leafDER}, PrivateKey: leafKey,
	}}
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	require.NoError(t, err)
	req.Host = "mail.test"
	req.Header.Set("Authorization", "Bearer "+h.token(t, alice, nil))
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "d-ok", h.upstream.last(t).Header.Get("X-Riskgate-Device-Id"))
	assert.Equal(t, "https", h.upstream.last(t).Header.Get("X-Forwarded-Proto"))
}
