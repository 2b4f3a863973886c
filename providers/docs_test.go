package providers_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/cancelworker/cancelworker/providers/pandapon"
)

// TestContractDoc keeps docs/upstreams.md and the code together: every
// section the code cites exists, and the test vectors the page gives are
// what the signing code computes.
func TestContractDoc(t *testing.T) {
	b, err := os.ReadFile("../docs/upstreams.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)

	cited := regexp.MustCompile(`docs/upstreams\.md §(\d+)`)
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range cited.FindAllStringSubmatch(string(src), -1) {
			if !strings.Contains(doc, "\n## §"+m[1]+" ") {
				t.Errorf("%s cites docs/upstreams.md §%s, which has no such section", path, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	seed := meari.Request{
		SourceApp: 72, UserAccount: "test@123.com", PartnerKey: "test", OrderType: 1, OrderNum: "1",
		SignatureMethod: meari.SignatureMethod, SignatureVersion: meari.SignatureVersion,
		SignatureNonce: "704", Timestamp: "1667476374574",
	}
	sorted := seed
	sorted.OrderNum = "01582572KS0209053"
	const ak, nonce, ts = "58c0201dfdf148eca63cbf6bb5e7cf03", "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "1715669977082"
	for _, want := range []string{
		meari.StringToSign(seed, meari.SignDocumented), meari.Sign(seed, "secret", meari.SignDocumented),
		meari.StringToSign(sorted, meari.SignSorted), meari.Sign(sorted, "secret", meari.SignSorted),
		pandapon.StringToSign(ak, nonce, ts), pandapon.Sign(ak, nonce, ts, "s3cr3t"),
	} {
		if !strings.Contains(doc, "`"+want+"`") {
			t.Errorf("docs/upstreams.md does not give %q", want)
		}
	}
}
