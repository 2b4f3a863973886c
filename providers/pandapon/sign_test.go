package pandapon

import "testing"

func TestSignVector(t *testing.T) {
	t.Parallel()
	const (
		ak    = "58c0201dfdf148eca63cbf6bb5e7cf03"
		nonce = "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
		ts    = "1715669977082"
	)
	if got, want := StringToSign(ak, nonce, ts), "access-key="+ak+"&nonce-str="+nonce+"&timestamp="+ts; got != want {
		t.Fatalf("StringToSign = %s, want %s", got, want)
	}
	// Computed independently: printf '%s' "$msg&secret=s3cr3t" | md5sum, upper-cased.
	if got, want := Sign(ak, nonce, ts, "s3cr3t"), "773DA88B23B025A812F99821DD93460C"; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}
