package pandapon

import (
	"crypto/md5"
	"encoding/hex"
	"strings"
)

// StringToSign returns the message PandaPon signs: the three signed system
// headers in a fixed order. user-id is not signed.
//
// DECISION (docs/upstreams.md §2): the vendor does not publish the rule; this is
// the one place it is written down.
func StringToSign(accessKey, nonce, timestamp string) string {
	return "access-key=" + accessKey + "&nonce-str=" + nonce + "&timestamp=" + timestamp
}

// SignRule names the signing rule in the debug line of an auth failure
// (providers.Signed.Mode).
const SignRule = `UPPER(HEX(MD5(stringToSign + "&secret=" + secret)))`

// Sign returns UPPER(HEX(MD5(StringToSign(...) + "&secret=" + accessSecret))):
// 32 upper-case hexadecimal characters.
func Sign(accessKey, nonce, timestamp, accessSecret string) string {
	sum := md5.Sum([]byte(StringToSign(accessKey, nonce, timestamp) + "&secret=" + accessSecret))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}
