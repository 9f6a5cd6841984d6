package eventlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Canonicalize returns the canonical form of a JSON document: objects with
// sorted keys, no insignificant white space, and numbers written by value
// (1.50, 1.5 and 15e-1 are all 1.5).
//
// Event data is hashed in this form. PostgreSQL's jsonb keeps a document's
// value but not its spelling, so the bytes read back from the database differ
// from the bytes written; both canonicalize to the same form, which is what
// lets a stored history be re-hashed and verified.
//
// It rejects documents PostgreSQL cannot store in jsonb (a NUL character in a
// string) and documents that are not exactly one JSON value.
func Canonicalize(doc []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	// Token returns io.EOF only when nothing but white space follows; a
	// second value and trailing garbage (which Token reports as a syntax
	// error) are both refused.
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON: more than one value, or data after the value")
	}
	var buf bytes.Buffer
	buf.Grow(len(doc))
	if err := writeCanonical(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeCanonical(buf *bytes.Buffer, v any) error {
	switch v := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		buf.WriteString(strconv.FormatBool(v))
	case json.Number:
		n, err := canonicalNumber(string(v))
		if err != nil {
			return err
		}
		buf.WriteString(n)
	case string:
		return writeString(buf, v)
	case []any:
		buf.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeCanonical(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeString(buf, k); err != nil {
				return err
			}
			buf.WriteByte(':')
			if err := writeCanonical(buf, v[k]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	default:
		return fmt.Errorf("canonical JSON: unexpected %T", v)
	}
	return nil
}

func writeString(buf *bytes.Buffer, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return errors.New(`invalid JSON: a string contains a NUL character (\u0000), which PostgreSQL jsonb cannot store`)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	buf.Write(b)
	return nil
}

// maxExponent bounds a number's decimal exponent, far beyond what jsonb's
// numeric accepts, so that the exponent arithmetic below cannot overflow.
const maxExponent = 1 << 20

// jsonb stores numbers as PostgreSQL numeric, which holds at most this many
// digits before and after the decimal point. Numbers beyond them are refused
// here, as input, rather than failing the append that stores them.
const (
	jsonbMaxIntegerDigits  = 131072
	jsonbMaxFractionDigits = 16383
)

// maxPlainIntegerDigits is the longest integer written without an
// exponent (RFC 8785 switches at 1e21 as well).
const maxPlainIntegerDigits = 21

// canonicalNumber writes a JSON number by its decimal value: no sign on zero,
// no leading or trailing zeros; integers of up to 21 digits written out, and
// an exponent only for larger or smaller magnitudes.
func canonicalNumber(s string) (string, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil || e > maxExponent || e < -maxExponent {
			return "", fmt.Errorf("invalid JSON number %q: exponent out of range", s)
		}
		mant, exp = s[:i], e
	}
	digits := mant
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		digits = mant[:i] + mant[i+1:]
		exp -= len(mant) - i - 1
	}
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return "0", nil
	}
	for strings.HasSuffix(digits, "0") {
		digits = digits[:len(digits)-1]
		exp++
	}
	if exp > maxExponent || exp < -maxExponent {
		return "", fmt.Errorf("invalid JSON number %q: exponent out of range", s)
	}
	if len(digits)+exp > jsonbMaxIntegerDigits || -exp > jsonbMaxFractionDigits {
		return "", fmt.Errorf("invalid JSON number %q: out of the range PostgreSQL jsonb can store (%d digits before the decimal point, %d after)",
			s, jsonbMaxIntegerDigits, jsonbMaxFractionDigits)
	}
	var out string
	switch {
	case exp == 0 || exp > 0 && len(digits)+exp <= maxPlainIntegerDigits:
		// Integers are written out, so that they still decode into Go
		// integer types: 1e16 would not unmarshal into an int64.
		out = digits + strings.Repeat("0", exp)
	case exp < 0 && -exp < len(digits):
		out = digits[:len(digits)+exp] + "." + digits[len(digits)+exp:]
	case exp < 0 && -exp-len(digits) <= 6:
		out = "0." + strings.Repeat("0", -exp-len(digits)) + digits
	default:
		out = digits + "e" + strconv.Itoa(exp)
	}
	if neg {
		out = "-" + out
	}
	return out, nil
}
