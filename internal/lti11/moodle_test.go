package lti11

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// moodleService answers like Moodle 4.3's mod/lti/service.php: it checks
// the OAuth signature against the secret it holds and, when that fails,
// answers HTTP 200 with a POX failure "Message signature not valid" (the
// envelope of lti_get_response_xml, one line after the declaration).
func moodleService(t *testing.T, secret string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		codeMajor, desc := "success", "Grade replace response"
		if _, err := VerifyRequest(r, body, func(k string) (string, bool) { return secret, true }, time.Now(), 300*time.Second); err != nil {
			codeMajor, desc = "failure", "Message signature not valid"
		}
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"+
			`<imsx_POXEnvelopeResponse xmlns="http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0"><imsx_POXHeader>`+
			`<imsx_POXResponseHeaderInfo><imsx_version>V1.0</imsx_version><imsx_messageIdentifier>1313355158</imsx_messageIdentifier>`+
			`<imsx_statusInfo><imsx_codeMajor>%s</imsx_codeMajor><imsx_severity>status</imsx_severity>`+
			`<imsx_description>%s</imsx_description><imsx_messageRefIdentifier>ref-1</imsx_messageRefIdentifier>`+
			`<imsx_operationRefIdentifier>replaceResultRequest</imsx_operationRefIdentifier></imsx_statusInfo>`+
			`</imsx_POXResponseHeaderInfo></imsx_POXHeader><imsx_POXBody><replaceResultResponse/></imsx_POXBody></imsx_POXEnvelopeResponse>`+"\n",
			codeMajor, desc)
	})
}

// Moodle refuses a bad signature with HTTP 200 and codeMajor failure: a
// rejection (a wrong secret is not fixed by resending), not a delivery,
// and not a retry.
func TestMoodleBadSignatureRejected(t *testing.T) {
	o := doAgainst(t, moodleService(t, "another-secret"), nil, replace())
	if o.Status != Rejected || o.HTTPStatus != 200 || !strings.Contains(o.Message, "Message signature not valid") {
		t.Fatalf("bad signature: %+v", o)
	}
	// The double can say yes: with the right secret the same service accepts.
	if o := doAgainst(t, moodleService(t, testSecret), nil, replace()); o.Status != Sent {
		t.Fatalf("good signature: %+v", o)
	}
}
