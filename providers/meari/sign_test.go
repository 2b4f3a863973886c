package meari

import "testing"

const sortedVectorSig = "oWDpU4S8rzbdzN9TnwMXPNZh6rI="

// The vendor document's example, in documented mode.
func TestSignSeedVector(t *testing.T) {
	t.Parallel()
	r := Request{
		SourceApp: 72, UserAccount: "test@123.com", PartnerKey: "test", OrderType: 1, OrderNum: "1",
		SignatureMethod: SignatureMethod, SignatureVersion: SignatureVersion,
		SignatureNonce: "704", Timestamp: "1667476374574",
	}
	const wantMsg = "partnerKey=test&signatureMethod=HMAC-SHA1&signatureNonce=704&signatureVersion=1.0&sourceApp=72&timestamp=1667476374574&orderType=1&orderNum=1"
	if got := StringToSign(r, SignDocumented); got != wantMsg {
		t.Fatalf("StringToSign(documented)\n got %s\nwant %s", got, wantMsg)
	}
	if got, want := Sign(r, "secret", SignDocumented), "JCiGi4F6vT/4O4cF4dfeGvtRYHQ="; got != want {
		t.Fatalf("Sign(documented) = %s, want %s", got, want)
	}
}

func TestSignSorted(t *testing.T) {
	t.Parallel()
	r := Request{
		SourceApp: 72, UserAccount: "test@123.com", PartnerKey: "test", OrderType: 1, OrderNum: "01582572KS0209053",
		SignatureMethod: SignatureMethod, SignatureVersion: SignatureVersion,
		SignatureNonce: "704", Timestamp: "1667476374574",
	}
	const wantMsg = "orderNum=01582572KS0209053&orderType=1&partnerKey=test&signatureMethod=HMAC-SHA1&signatureNonce=704&signatureVersion=1.0&sourceApp=72&timestamp=1667476374574&userAccount=test@123.com"
	if got := StringToSign(r, SignSorted); got != wantMsg {
		t.Fatalf("StringToSign(sorted)\n got %s\nwant %s", got, wantMsg)
	}
	// Computed independently: printf '%s' "$msg" | openssl dgst -sha1 -hmac secret -binary | base64
	if got, want := Sign(r, "secret", SignSorted), sortedVectorSig; got != want {
		t.Fatalf("Sign(sorted) = %s, want %s", got, want)
	}
	if Sign(r, "secret", SignSorted) == Sign(r, "secret", SignDocumented) {
		t.Fatal("sorted and documented modes must sign different messages")
	}
}
