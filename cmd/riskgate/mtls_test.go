package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/internal/oidctest"
	"github.com/riskgate/riskgate/policy"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf certificate; edit fills in names and usages.
func (ca *testCA) issue(t *testing.T, cn string, edit func(*x509.Certificate)) (certPEM, keyPEM []byte) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	edit(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func (ca *testCA) deviceCert(t *testing.T, deviceURI string) tls.Certificate {
	t.Helper()
	u, err := url.Parse(deviceURI)
	require.NoError(t, err)
	c, k := ca.issue(t, "device", func(c *x509.Certificate) {
		c.URIs = []*url.URL{u}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	})
	pair, err := tls.X509KeyPair(c, k)
	require.NoError(t, err)
	return pair
}

func TestMutualTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newCA(t, "Corp Device CA")
	serverCert, serverKey := ca.issue(t, "riskgate", func(c *x509.Certificate) {
		c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	files := map[string][]byte{"ca.pem": ca.pem, "server.pem": serverCert, "server-key.pem": serverKey}
	for name, data := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
	}

	iss := oidctest.New(t)
	v := newVendor(t)
	v.set("dev-1", policy.LevelSecured, testUser, "ios", "17.4")
	v.set("dev-2", policy.LevelLow, testUser, "android", "14")
	v.set("dev-bob", policy.LevelSecured, "bob@corp.example", "ios", "17.4")
	up := newUpstream(t)
	path := filepath.Join(dir, "riskgate.yaml")
	writeFile(t, path, renderConfig(configParams{
		Issuer: iss.URL, Upstream: up.URL,
		Vendors:  vendorYAML("acme", v.url(), time.Hour, false),
		Policies: policyYAML("p", "low"),
		Server: "  tls:\n" +
			"    cert_file: " + filepath.Join(dir, "server.pem") + "\n" +
			"    key_file: " + filepath.Join(dir, "server-key.pem") + "\n" +
			"    client_ca_file: " + filepath.Join(dir, "ca.pem") + "\n",
		Sources: "    - client_cert: {san_uri_prefix: \"urn:device:\"}\n    - query: DeviceId\n",
	}))
	s := startServe(t, path)
	s.waitReady(t)
	require.Regexp(t, `^https://`, s.proxyURL)

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	clientWith := func(certs ...tls.Certificate) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 15 * time.Second}
	}
	tok := token(t, iss, testUser, nil, "")

	t.Run("device certificate identifies the device", func(t *testing.T) {
		c := clientWith(ca.deviceCert(t, "urn:device:dev-1"))
		r := mustDo(t, c, s.proxyURL+"/owa", tok)
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.Equal(t, "dev-1", r.Seen.Device)
		assert.Equal(t, "secured", r.Seen.Risk)

		// The certificate is the first source: a query parameter does not
		// override it.
		r = mustDo(t, c, s.proxyURL+"/owa?DeviceId=dev-2", tok)
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.Equal(t, "dev-1", r.Seen.Device)
	})

	t.Run("certificate from another CA fails the handshake", func(t *testing.T) {
		other := newCA(t, "Someone Else's CA")
		cert := other.deviceCert(t, "urn:device:dev-1")
		// Go's client only offers a certificate from a CA the server names;
		// present it regardless, as a client that does not look would.
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }}}
		defer tr.CloseIdleConnections()
		_, err := do(&http.Client{Transport: tr, Timeout: 15 * time.Second}, s.proxyURL+"/owa", tok)
		require.Error(t, err)
		assert.ErrorContains(t, err, "certificate")

		// A client that follows the server's CA list sends none: it is
		// served without a device from the certificate.
		r := mustDo(t, clientWith(cert), s.proxyURL+"/owa", tok)
		require.Equal(t, http.StatusForbidden, r.Status, r.Body)
		assert.Equal(t, "device_missing", r.Block["reason"])
	})

	t.Run("certificate without the SAN prefix: next source", func(t *testing.T) {
		c := clientWith(ca.deviceCert(t, "spiffe://corp.example/dev-1"))
		r := mustDo(t, c, s.proxyURL+"/owa", tok)
		require.Equal(t, http.StatusForbidden, r.Status, r.Body)
		assert.Equal(t, "device_missing", r.Block["reason"])
	})

	t.Run("no client certificate", func(t *testing.T) {
		c := clientWith()
		r := mustDo(t, c, s.proxyURL+"/owa", tok)
		require.Equal(t, http.StatusForbidden, r.Status, r.Body)
		assert.Equal(t, "device_missing", r.Block["reason"])

		// The next source, the self-asserted query parameter, counts when
		// the vendor lists the device as the user's.
		r = mustDo(t, c, s.proxyURL+"/owa?DeviceId=dev-2", tok)
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.Equal(t, "dev-2", r.Seen.Device)
		assert.Equal(t, "low", r.Seen.Risk)

		r = mustDo(t, c, s.proxyURL+"/owa?DeviceId=dev-bob", tok)
		require.Equal(t, http.StatusForbidden, r.Status, r.Body)
		assert.Equal(t, "device_not_owned", r.Block["reason"])
	})

	t.Run("plain HTTP is not served", func(t *testing.T) {
		resp, err := http.Get("http://" + s.proxyURL[len("https://"):] + "/owa")
		if err == nil {
			resp.Body.Close()
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		}
	})
	require.NoError(t, s.stop())
}
