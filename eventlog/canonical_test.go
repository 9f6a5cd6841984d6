package eventlog_test

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/chronicle-engine/chronicle/eventlog"
)

func TestCanonicalize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"sorted keys", `{"b":1,"a":2,"c":3}`, `{"a":2,"b":1,"c":3}`},
		{"keys sort by bytes", `{"b":1,"B":2,"aa":3,"a":4}`, `{"B":2,"a":4,"aa":3,"b":1}`},
		{"white space", " {\n\t\"a\" : [ 1 , 2 ] ,\r\n \"b\" : { } } \n", `{"a":[1,2],"b":{}}`},
		{"nested objects sorted", `{"z":{"y":1,"x":[{"b":true,"a":null}]},"a":"s"}`, `{"a":"s","z":{"x":[{"a":null,"b":true}],"y":1}}`},
		{"array order kept", `[3,1,2]`, `[3,1,2]`},
		{"empty values", `{"a":[],"b":{},"c":""}`, `{"a":[],"b":{},"c":""}`},
		{"literals", `[true,false,null]`, `[true,false,null]`},
		{"duplicate key keeps the last, as jsonb does", `{"a":1,"a":2}`, `{"a":2}`},
		{"string escapes", `"a\u0041\n\"\\\/"`, `"aA\n\"\\/"`},
		{"unicode kept", `"héllo ✓"`, `"héllo ✓"`},

		{"trailing zero", `1.50`, `1.5`},
		{"exponent", `1e2`, `100`},
		{"upper exponent with plus", `1E+2`, `100`},
		{"negative exponent", `15e-1`, `1.5`},
		{"negative zero", `-0`, `0`},
		{"negative zero fraction", `-0.000e5`, `0`},
		{"zero fraction", `0.0`, `0`},
		{"integer fraction", `2.000`, `2`},
		{"negative", `-12.340`, `-12.34`},
		{"small decimal", `0.001`, `0.001`},
		{"six leading zeros", `0.0000001`, `0.0000001`},
		{"tiny", `1e-30`, `1e-30`},
		{"tiny spelled out", `0.000000000000000000000000000001`, `1e-30`},
		{"negative tiny", `-1e-30`, `-1e-30`},
		{"big int exact", `12345678901234567890123`, `12345678901234567890123`},
		{"big int beyond float64", `9007199254740993`, `9007199254740993`},
		{"fifteen zeros spelled out", `1e15`, `1000000000000000`},
		{"integers stay integers up to 21 digits", `1e16`, `10000000000000000`},
		{"negative large integer", `-10000000000000000`, `-10000000000000000`},
		{"21 digits", `1e20`, `100000000000000000000`},
		{"22 digits as exponent", `1e21`, `1e21`},
		{"long exact integer", `1234567890123456789012345`, `1234567890123456789012345`},
		{"huge", `1.5e300`, `15e299`},
		{"long mantissa exact", `3.141592653589793238462643383279`, `3.141592653589793238462643383279`},
		{"numbers inside objects", `{"n":[1.0,2e0,-0.5e1]}`, `{"n":[1,2,-5]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := eventlog.Canonicalize([]byte(tt.in))
			if err != nil {
				t.Fatalf("Canonicalize(%s): %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Fatalf("Canonicalize(%s) = %s, want %s", tt.in, got, tt.want)
			}
			again, err := eventlog.Canonicalize(got)
			if err != nil {
				t.Fatalf("Canonicalize(%s) (second pass): %v", got, err)
			}
			if !bytes.Equal(again, got) {
				t.Fatalf("not idempotent: Canonicalize(%s) = %s", got, again)
			}
		})
	}
}

func TestCanonicalizeRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantErr string // a substring of the error message
	}{
		{"NUL in a string", `{"a":"x\u0000y"}`, "NUL"},
		{"NUL in a key", `{"a\u0000":1}`, "NUL"},
		{"NUL nested in an array", `[["\u0000"]]`, "NUL"},
		{"empty document", ``, "invalid JSON"},
		{"only white space", "  \n", "invalid JSON"},
		{"two values", `1 2`, "invalid JSON"},
		{"two objects", `{}{}`, "invalid JSON"},
		{"trailing word", `{} x`, "invalid JSON"},
		{"trailing letter", `1x`, "invalid JSON"},
		{"trailing bracket", `1]`, "invalid JSON"},
		{"trailing brace", `[1]}`, "invalid JSON"},
		{"trailing comma", `{"a":1} ,`, "invalid JSON"},
		{"trailing colon", `"a" :`, "invalid JSON"},
		{"unterminated", `{"a":1`, "invalid JSON"},
		{"single quotes", `{'a':1}`, "invalid JSON"},
		{"bare word", `nope`, "invalid JSON"},
		{"leading zero", `01`, "invalid JSON"},
		{"NaN", `NaN`, "invalid JSON"},
		{"exponent overflowing int64", `1e99999999999999999999`, "exponent out of range"},
		{"exponent at int64 min", `1e-9223372036854775808`, "exponent out of range"},
		{"exponent at int64 max with trailing zero", `10e9223372036854775807`, "exponent out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := eventlog.Canonicalize([]byte(tt.in))
			if err == nil {
				t.Fatalf("Canonicalize(%q) = %s, want an error", tt.in, got)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Canonicalize(%q) error = %q, want it to mention %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

// TestCanonicalizeNULMessage checks that the NUL error tells the user why.
func TestCanonicalizeNULMessage(t *testing.T) {
	t.Parallel()
	_, err := eventlog.Canonicalize([]byte(`"\u0000"`))
	if err == nil || !strings.Contains(err.Error(), "PostgreSQL jsonb cannot store") {
		t.Fatalf("error = %v, want one saying PostgreSQL jsonb cannot store a NUL", err)
	}
}

// TestCanonicalizeSameValueSameBytes: different spellings of one value give
// the same canonical bytes, which is what lets jsonb round trips verify.
func TestCanonicalizeSameValueSameBytes(t *testing.T) {
	t.Parallel()
	spellings := []string{
		`{"amount":1.50,"tags":["a","b"],"meta":{"y":1e2,"x":-0}}`,
		`{ "meta" : { "x" : 0, "y" : 100 }, "tags" : [ "a", "b" ], "amount" : 15e-1 }`,
		"{\"tags\":[\"\\u0061\",\"b\"],\n\"amount\":1.5000,\"meta\":{\"x\":0.0,\"y\":100.0}}",
	}
	want, err := eventlog.Canonicalize([]byte(spellings[0]))
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != `{"amount":1.5,"meta":{"x":0,"y":100},"tags":["a","b"]}` {
		t.Fatalf("canonical form = %s", want)
	}
	for _, s := range spellings[1:] {
		got, err := eventlog.Canonicalize([]byte(s))
		if err != nil {
			t.Fatalf("Canonicalize(%s): %v", s, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Canonicalize(%s) = %s, want %s", s, got, want)
		}
	}
}

func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `null`, `true`, `"s"`, `0`, `-0`, `1.50`, `1e2`, `15e-1`, `1e-30`, `-1.5E+300`,
		`12345678901234567890123`, `0.0000001`, `10000000000000000`,
		`{"b":1,"a":[1,2,{"d":null,"c":"x"}]}`,
		`{"a":"\u00e9\n\t\"<&>"}`, `{"a":1,"a":2}`, ` [ 1 , { "k" : -0.0 } ] `,
		`{"amount":1.50,"meta":{"y":1e2}}`, `"\ud83d\ude00"`, `1 2`, `{} x`, `"\u0000"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		c1, err := eventlog.Canonicalize(doc)
		if err != nil {
			return
		}
		if !json.Valid(c1) {
			t.Fatalf("Canonicalize(%q) = %q, which is not valid JSON", doc, c1)
		}
		c2, err := eventlog.Canonicalize(c1)
		if err != nil {
			t.Fatalf("Canonicalize(%q) = %q, which it then rejects: %v", doc, c1, err)
		}
		if !bytes.Equal(c1, c2) {
			t.Fatalf("not idempotent: %q -> %q -> %q", doc, c1, c2)
		}
		// The value is kept. Numbers are compared as float64, which is exact
		// enough for a fuzzer's numbers; documents with numbers out of
		// float64's range are not compared.
		var v1, v2 any
		if json.Unmarshal(doc, &v1) != nil || json.Unmarshal(c1, &v2) != nil {
			return
		}
		if !sameValue(v1, v2) {
			t.Fatalf("value changed: %q (%#v) -> %q (%#v)", doc, v1, c1, v2)
		}
	})
}

// sameValue compares decoded JSON values, treating numbers as equal when
// they are the same float64 (or both round to the same one).
func sameValue(a, b any) bool {
	switch a := a.(type) {
	case float64:
		b, ok := b.(float64)
		return ok && (a == b || math.Abs(a-b) <= 1e-12*math.Max(math.Abs(a), math.Abs(b)))
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameValue(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, va := range a {
			vb, ok := b[k]
			if !ok || !sameValue(va, vb) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(a, b)
	}
}
