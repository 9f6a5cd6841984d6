package activities

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// ErrAddressNotAllowed: a webhook URL, or a redirect it led to, resolved to
// an address that webhooks may not reach (loopback, private, link-local
// and other internal ranges), unless WebhookConfig.AllowPrivateNetworks or
// AllowedNetworks allows it. Deliveries fail with it for good.
var ErrAddressNotAllowed = errors.New("address not allowed for webhooks")

// deniedNetworks are the ranges refused besides those that netip.Addr
// classifies (loopback, private, link-local, multicast, unspecified): the
// special-purpose ranges of RFC 6890 that lead inside a network.
var deniedNetworks = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT, some clouds' metadata services
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, and broadcast
	netip.MustParsePrefix("100::/64"),      // discard-only
	netip.MustParsePrefix("fec0::/10"),     // deprecated site-local
}

// ipv4Embedding are IPv6 ranges that carry an IPv4 address, which must be
// checked in its turn: NAT64 (RFC 6052, RFC 8215) and 6to4 (RFC 3056).
var ipv4Embedding = []struct {
	prefix netip.Prefix
	offset int // byte offset of the IPv4 address
}{
	{netip.MustParsePrefix("64:ff9b::/96"), 12},
	{netip.MustParsePrefix("64:ff9b:1::/48"), 12},
	{netip.MustParsePrefix("2002::/16"), 2},
}

// addressGuard decides which resolved addresses webhooks may connect to.
type addressGuard struct {
	allowPrivate bool
	allowed      []netip.Prefix
}

// check returns nil when addr may be reached, or an error wrapping
// ErrAddressNotAllowed that names the address and why.
func (g addressGuard) check(addr netip.Addr) error {
	addr = addr.Unmap().WithZone("")
	if g.allowPrivate {
		return nil
	}
	for _, p := range g.allowed {
		if p.Contains(addr) {
			return nil
		}
	}
	if reason := internalReason(addr); reason != "" {
		return fmt.Errorf("%w: %s is %s; set WebhookConfig.AllowPrivateNetworks or add it to AllowedNetworks if this receiver is trusted", ErrAddressNotAllowed, addr, reason)
	}
	return nil
}

// internalReason says why addr leads inside a network, or "" when it is a
// public address.
func internalReason(addr netip.Addr) string {
	switch {
	case !addr.IsValid():
		return "not an IP address"
	case addr.IsLoopback():
		return "a loopback address"
	case addr.IsPrivate():
		return "a private address"
	case addr.IsLinkLocalUnicast():
		return "a link-local address (cloud metadata services live there)"
	case addr.IsUnspecified():
		return "the unspecified address"
	case addr.IsMulticast(), addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast():
		return "a multicast address"
	}
	for _, p := range deniedNetworks {
		if p.Contains(addr) {
			return "in the special-purpose range " + p.String()
		}
	}
	if addr.Is6() {
		b := addr.As16()
		for _, e := range ipv4Embedding {
			if e.prefix.Contains(addr) {
				v4 := netip.AddrFrom4([4]byte(b[e.offset : e.offset+4]))
				if r := internalReason(v4); r != "" {
					return fmt.Sprintf("an IPv6 address embedding %s, %s", v4, r)
				}
			}
		}
	}
	return ""
}

// control is the net.Dialer Control hook: it runs after DNS resolution with
// the address about to be connected to, for the first request and for every
// redirect, so a host name that resolves to an internal address (or changes
// to one between checks) is refused before any packet is sent to it.
func (g addressGuard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse dialed address %q (%s): %v", ErrAddressNotAllowed, address, network, err)
	}
	return g.check(ap.Addr())
}
