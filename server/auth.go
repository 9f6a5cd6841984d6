package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"unicode"
)

// Environment variables that configure who may use the HTTP API and the
// admin UI (AuthFromEnv).
const (
	// EnvAdminToken is a bearer token: "Authorization: Bearer TOKEN".
	EnvAdminToken = "CHRONICLE_ADMIN_TOKEN"
	// EnvAdminUser and EnvAdminPassword are a basic-auth login, which a
	// browser asks for when it opens /admin/jobs.
	EnvAdminUser     = "CHRONICLE_ADMIN_USER"
	EnvAdminPassword = "CHRONICLE_ADMIN_PASSWORD"
)

// Actors recorded for requests that carry no user name.
const (
	// ActorToken is the actor of a bearer-token request without an
	// X-Chronicle-Actor header.
	ActorToken = "token"
	// ActorAnonymous is the actor of requests to a server without
	// authentication, which only listens on loopback.
	ActorAnonymous = "anonymous"
	// ActorHeader names who acts in a bearer-token request: the actor
	// recorded is "token:NAME".
	ActorHeader = "X-Chronicle-Actor"
)

// ErrAuthRequired: the server would listen beyond loopback with no
// authentication configured.
var ErrAuthRequired = errors.New("authentication required")

// AuthConfig says who may use the HTTP API and the admin UI. /api/healthz
// never needs authentication (load balancers probe it), nor /metrics unless
// Config.MetricsAuth is set. With no credentials at all every request is
// let in as ActorAnonymous, which CheckListen allows on loopback only.
type AuthConfig struct {
	// Token is accepted as "Authorization: Bearer TOKEN" (the actor is
	// ActorToken, or "token:NAME" with an X-Chronicle-Actor: NAME header)
	// and as the password of basic auth with any user name USER (the
	// actor is "token:USER"), so that a browser can use it too.
	Token string
	// User and Password are a basic-auth login; the actor is User.
	// Both or neither.
	User, Password string
}

// AuthFromEnv reads CHRONICLE_ADMIN_TOKEN, CHRONICLE_ADMIN_USER and
// CHRONICLE_ADMIN_PASSWORD.
func AuthFromEnv() AuthConfig {
	return AuthConfig{Token: os.Getenv(EnvAdminToken), User: os.Getenv(EnvAdminUser), Password: os.Getenv(EnvAdminPassword)}
}

// Enabled reports whether any credentials are configured.
func (a AuthConfig) Enabled() bool { return a.Token != "" || a.User != "" || a.Password != "" }

// Validate checks the credentials are complete and strong enough to be
// worth having.
func (a AuthConfig) Validate() error {
	if (a.User == "") != (a.Password == "") {
		return fmt.Errorf("basic auth needs both %s and %s; one of them is empty", EnvAdminUser, EnvAdminPassword)
	}
	if a.User != "" && strings.ContainsAny(a.User, ":") {
		return fmt.Errorf("%s %q contains ':', which basic auth cannot carry", EnvAdminUser, a.User)
	}
	for name, v := range map[string]string{EnvAdminToken: a.Token, EnvAdminPassword: a.Password} {
		if v != "" && len(v) < 16 {
			return fmt.Errorf("%s is %d characters; use at least 16 (for example: openssl rand -hex 24)", name, len(v))
		}
	}
	return nil
}

// CheckListen refuses to serve the API and admin UI beyond loopback with
// no authentication: addr must be a loopback address (127.0.0.1, [::1],
// localhost) unless auth is enabled.
func CheckListen(addr string, auth AuthConfig) error {
	if err := auth.Validate(); err != nil {
		return err
	}
	if auth.Enabled() || isLoopback(addr) {
		return nil
	}
	return fmt.Errorf("%w: refusing to listen on %s without authentication, since the HTTP API and the admin UI can retry, resolve and cancel jobs; set %s (a bearer token), or %s and %s (basic auth), or listen on 127.0.0.1",
		ErrAuthRequired, addr, EnvAdminToken, EnvAdminUser, EnvAdminPassword)
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type actorKey struct{}

// Actor returns who made the request, as the authentication established
// it: the name recorded in the events of operator actions.
func Actor(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}

// authenticate returns the request's actor, or false.
func (a AuthConfig) authenticate(r *http.Request) (string, bool) {
	if !a.Enabled() {
		return ActorAnonymous, true
	}
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok && a.Token != "" {
		if !equal(strings.TrimSpace(tok), a.Token) {
			return "", false
		}
		if name := r.Header.Get(ActorHeader); name != "" {
			if !validActorName(name) {
				return "", false
			}
			return ActorToken + ":" + name, true
		}
		return ActorToken, true
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	if a.User != "" && equal(user, a.User) && equal(pass, a.Password) {
		return user, true
	}
	if a.Token != "" && equal(pass, a.Token) && validActorName(user) {
		return ActorToken + ":" + user, true
	}
	return "", false
}

func equal(got, want string) bool {
	// Compare digests so that the time taken says nothing of the length.
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// validActorName accepts 1 to 100 printable characters.
func validActorName(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// requireAuth lets authenticated requests through with their actor in the
// context; the others get 401, as JSON for the API and with a basic-auth
// challenge for the admin UI, so that a browser asks for a login.
func (s *Server) requireAuth(api bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		actor, ok := s.cfg.Auth.authenticate(r)
		if !ok {
			if api {
				if s.cfg.Auth.Token != "" {
					w.Header().Add("WWW-Authenticate", `Bearer realm="chronicle"`)
				}
				if s.cfg.Auth.User != "" {
					w.Header().Add("WWW-Authenticate", `Basic realm="chronicle", charset="UTF-8"`)
				}
				writeError(w, http.StatusUnauthorized, codeUnauthorized, fmt.Sprintf("authenticate with %s", s.authHint()))
				return
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="Chronicle admin", charset="UTF-8"`)
			http.Error(w, "Chronicle admin: log in with "+s.authHint()+".", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), actorKey{}, actor)))
	})
}

func (s *Server) authHint() string {
	var ways []string
	if s.cfg.Auth.Token != "" {
		ways = append(ways, "\"Authorization: Bearer $"+EnvAdminToken+"\"", "basic auth with any user name and the token as password")
	}
	if s.cfg.Auth.User != "" {
		ways = append(ways, "basic auth as $"+EnvAdminUser)
	}
	return strings.Join(ways, ", or ")
}

// formTokens makes and checks the hidden token of the admin UI's forms:
// an HMAC of the actor. The browser sends basic-auth credentials with any
// request to the server, so a form posted from another site would carry
// them; it cannot carry this token, which only pages of this server show.
// (CrossOriginProtection already refuses such requests from browsers that
// send Sec-Fetch-Site or Origin; the token covers the others.)
type formTokens struct{ key []byte }

func newFormTokens(auth AuthConfig) formTokens {
	if !auth.Enabled() {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		return formTokens{key: key}
	}
	// Derived from the secrets, so that every replica behind a load
	// balancer accepts the forms of the others.
	sum := sha256.Sum256([]byte("chronicle form token\x00" + auth.Token + "\x00" + auth.User + "\x00" + auth.Password))
	return formTokens{key: sum[:]}
}

func (f formTokens) make(actor string) string {
	m := hmac.New(sha256.New, f.key)
	m.Write([]byte(actor))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (f formTokens) check(actor, token string) bool {
	return hmac.Equal([]byte(f.make(actor)), []byte(token))
}
