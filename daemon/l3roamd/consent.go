package l3roamd

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/intercom"
	"github.com/gluon-464xlat/gluon-464xlat/internal/addrplan"
)

// A PLAT moves a client's sessions (accepts a ROAM) only with the consent
// of the node that holds them now: the node of the client's CLATD, or the
// node the PLAT last moved them to. The roaming key cannot decide this: it
// ships in every image of the site. So the node that answers a CLAIM puts
// a random token into the INFO_XLAT it sends the claimer (unicast, to the
// claimer's node IP), the claimer repeats it in its ROAM, and the PLAT asks
// the holder (CONSENT, with a random challenge, to the holder's
// CLAT::192.0.0.2) whether it handed the client over with that token. A
// node that was not handed the client does not know the token, and cannot
// answer in the holder's name without receiving what is sent to the
// holder's address, which Babel routes to the holder
// (docs/l3roamd-security.md).
const (
	// handoverTTL: how long a handover can be asked about; the ROAM follows
	// the INFO_XLAT within its retries (7.5 s), the PLAT's question within
	// consentWait after that.
	handoverTTL = time.Minute
	// maxPendingConsents: ROAMs a PLAT holds while it asks; more are
	// refused (a flood of signed ROAMs must not become a flood of CONSENTs).
	maxPendingConsents = 64
	// consentRate: CONSENTs a holder answers per second, bursts of as many.
	consentRate = 20
)

// consentTries: when a PLAT (re)sends its CONSENT, from the ROAM on; it
// gives up consentWait after the first.
var (
	consentTries = []time.Duration{0, 300 * time.Millisecond, time.Second}
	consentWait  = 2 * time.Second
)

// handover is what a node keeps of a client it handed over: the token it
// gave the claimer, and the challenge it said yes to (each token buys one
// consent; the PLAT repeats a question with the same challenge).
type handover struct {
	token     uint64
	challenge uint64
	expires   time.Time
}

// pendingConsent is a ROAM waiting for the holder's answer.
type pendingConsent struct {
	holder netip.Addr // CLAT::192.0.0.2 of the holder
	ip4    netip.Addr
	reply  chan bool
}

func random64() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
}

// recordHandover gives the client's sessions a token for its claimer (mu
// held). The table is bounded by -max-clients: when full of live
// handovers, none is recorded (counted) and the claimer's ROAM is refused.
func (d *daemon) recordHandover(ip4 netip.Addr) uint64 {
	now := time.Now()
	if _, ok := d.handovers[ip4]; !ok && len(d.handovers) >= d.c.maxClients {
		for a, h := range d.handovers {
			if now.After(h.expires) {
				delete(d.handovers, a)
			}
		}
		if len(d.handovers) >= d.c.maxClients {
			d.count["handovers_table_full"]++
			return 0
		}
	}
	token := random64() | 1 // 0 is "no token"
	d.handovers[ip4] = handover{token: token, expires: now.Add(handoverTTL)}
	return token
}

// holderOf is the /96 whose node holds the sessions of home (CLATD::ip) as
// this PLAT sees it (mu held).
func (d *daemon) holderOf(clatd netip.Prefix, home netip.Addr) netip.Prefix {
	if r, ok := d.roams[home]; ok {
		return netip.PrefixFrom(r.now, 96).Masked()
	}
	return clatd
}

// askConsent holds a checked ROAM until the holder of the client's
// sessions agrees, and then accepts it.
func (d *daemon) askConsent(x *intercom.XLAT, holder netip.Prefix, from netip.Addr) {
	q := &intercom.Consent{Challenge: random64(), ClientIP: x.ClientIP, Token: x.Token, CLATD: x.CLATD, CLATB: x.CLATB}
	p := pendingConsent{holder: addrplan.CLATOwn(holder), ip4: x.ClientIP, reply: make(chan bool, 1)}
	d.mu.Lock()
	if len(d.consents) >= maxPendingConsents {
		d.mu.Unlock()
		d.drop("roam_consent_busy", from, fmt.Errorf("%d ROAMs waiting for consent", maxPendingConsents))
		return
	}
	d.consents[q.Challenge] = p
	d.count["consents_asked"]++
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.consents, q.Challenge)
		d.mu.Unlock()
	}()
	src := addrplan.PLATMgmt(d.c.ownPLAT)
	give := time.After(consentWait)
	for i := 0; ; i++ {
		if i < len(consentTries) {
			// a new nonce each time: the holder's duplicate check must not
			// swallow a repeat whose answer was lost
			b := intercom.ConsentAsk(d.header(), q, d.c.key, uint32(time.Now().Unix()))
			if err := d.send(b, p.holder, src); err != nil {
				slog.Warn("sending CONSENT", "to", p.holder, "err", err)
			}
		}
		var next <-chan time.Time
		if i+1 < len(consentTries) {
			next = time.After(consentTries[i+1] - consentTries[i])
		}
		select {
		case <-d.done:
			return
		case yes := <-p.reply:
			if !yes {
				d.drop("roam_no_consent", from, fmt.Errorf("%s did not hand %s to %s", p.holder, x.ClientIP, x.CLATB))
				return
			}
			d.acceptRoam(x, holder)
			return
		case <-give:
			d.drop("roam_consent_timeout", from, fmt.Errorf("no answer from %s for %s", p.holder, x.ClientIP))
			return
		case <-next:
		}
	}
}

// onConsent: a PLAT asks whether this node handed a client over.
func (d *daemon) onConsent(m *intercom.Message, from, to netip.Addr) {
	c := m.Consent
	if !d.c.clat.IsValid() || to != addrplan.CLATOwn(d.c.clat) {
		d.drop("consent_not_for_this_node", from, fmt.Errorf("to %s", to))
		return
	}
	if !d.c.platRange.Contains(from) {
		d.drop("consent_not_from_plat", from, nil)
		return
	}
	if !d.consentLim.Allow() {
		d.inc("consent_rate_limited")
		return
	}
	d.mu.Lock()
	h, ok := d.handovers[c.ClientIP]
	yes := ok && c.Token != 0 && h.token == c.Token && time.Now().Before(h.expires) &&
		(h.challenge == 0 || h.challenge == c.Challenge)
	if yes {
		h.challenge = c.Challenge
		d.handovers[c.ClientIP] = h
		d.count["consents_given"]++
	} else {
		d.count["consents_refused"]++
	}
	d.mu.Unlock()
	if !yes {
		d.logLimited("refused consent: not handed over with that token", "client", c.ClientIP, "to", c.CLATB, "plat", from)
	}
	r := &intercom.Consent{Challenge: c.Challenge, ClientIP: c.ClientIP, Yes: yes}
	d.send(intercom.ConsentReply(d.header(), r, d.c.key, uint32(time.Now().Unix())), from, addrplan.CLATOwn(d.c.clat))
}

// onConsentReply: the holder's answer to one of this PLAT's questions.
func (d *daemon) onConsentReply(m *intercom.Message, from, to netip.Addr) {
	c := m.Consent
	if !d.c.ownPLAT.IsValid() || to != addrplan.PLATMgmt(d.c.ownPLAT) {
		d.drop("consent_reply_not_for_this_plat", from, fmt.Errorf("to %s", to))
		return
	}
	d.mu.Lock()
	p, ok := d.consents[c.Challenge]
	d.mu.Unlock()
	switch {
	case !ok:
		d.drop("consent_reply_unsolicited", from, nil)
	case from != p.holder || c.ClientIP != p.ip4:
		d.drop("consent_reply_wrong_source", from, fmt.Errorf("asked %s about %s", p.holder, p.ip4))
	default:
		select {
		case p.reply <- c.Yes:
		default: // answered already
		}
	}
}
