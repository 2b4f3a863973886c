package meari

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// SignMode selects how the string to sign is built. See docs/upstreams.md §1.
type SignMode string

const (
	// SignSorted signs every body field except signature, as key=value,
	// sorted by key in byte order and joined with "&". It is the rule the
	// vendor document states and its reference client implements.
	SignSorted SignMode = "sorted"
	// SignDocumented reproduces the vendor document's example literally: the
	// six system fields sorted, then orderType, then orderNum; userAccount is
	// not signed.
	SignDocumented SignMode = "documented"

	// SignModeDefault is the mode used when none is configured.
	SignModeDefault = SignSorted
)

// ParseSignMode returns the mode named s, or an error listing the valid ones.
func ParseSignMode(s string) (SignMode, error) {
	switch m := SignMode(s); m {
	case SignSorted, SignDocumented:
		return m, nil
	}
	return "", fmt.Errorf("must be %q or %q, got %q", SignSorted, SignDocumented, s)
}

// Fixed values of the signature system fields.
const (
	SignatureMethod  = "HMAC-SHA1"
	SignatureVersion = "1.0"
)

// Request is the body of POST /v3/third/sdk/order/cancel, field for field.
type Request struct {
	SourceApp        int64  `json:"sourceApp"`
	UserAccount      string `json:"userAccount"`
	PartnerKey       string `json:"partnerKey"`
	OrderType        int    `json:"orderType"`
	OrderNum         string `json:"orderNum"`
	SignatureMethod  string `json:"signatureMethod"`
	SignatureVersion string `json:"signatureVersion"`
	SignatureNonce   string `json:"signatureNonce"`
	Timestamp        string `json:"timestamp"`
	Signature        string `json:"signature"`
}

// StringToSign returns the message that is signed for r in the given mode.
// Values are used raw, exactly as they appear in the body; integers as their
// decimal digits. An unknown mode is treated as SignModeDefault.
func StringToSign(r Request, mode SignMode) string {
	if mode == SignDocumented {
		return "partnerKey=" + r.PartnerKey +
			"&signatureMethod=" + r.SignatureMethod +
			"&signatureNonce=" + r.SignatureNonce +
			"&signatureVersion=" + r.SignatureVersion +
			"&sourceApp=" + strconv.FormatInt(r.SourceApp, 10) +
			"&timestamp=" + r.Timestamp +
			"&orderType=" + strconv.Itoa(r.OrderType) +
			"&orderNum=" + r.OrderNum
	}
	pairs := []string{
		"sourceApp=" + strconv.FormatInt(r.SourceApp, 10),
		"userAccount=" + r.UserAccount,
		"partnerKey=" + r.PartnerKey,
		"orderType=" + strconv.Itoa(r.OrderType),
		"orderNum=" + r.OrderNum,
		"signatureMethod=" + r.SignatureMethod,
		"signatureVersion=" + r.SignatureVersion,
		"signatureNonce=" + r.SignatureNonce,
		"timestamp=" + r.Timestamp,
	}
	// Sorting "key=value" strings sorts by key: no key is a prefix of
	// another, so the '=' never decides the order.
	sort.Strings(pairs)
	return strings.Join(pairs, "&")
}

// Sign returns Base64(HMAC-SHA1(key = partnerSecret, message = StringToSign(r, mode))).
func Sign(r Request, partnerSecret string, mode SignMode) string {
	mac := hmac.New(sha1.New, []byte(partnerSecret))
	mac.Write([]byte(StringToSign(r, mode)))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
