package mask_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/mask"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

func registry(t testing.TB) *catalog.Registry {
	return operatortest.Registry(t, mask.Register)
}

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, registry(t), "mask")
}

func decode(t *testing.T, s string) any {
	t.Helper()
	v, err := record.DecodeJSON([]byte(s))
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return v
}

func TestProcess(t *testing.T) {
	// Computed with: printf 'x' | openssl dgst -sha256 -hmac pepper
	const hmacX = "3907347a65f6001d4cef35d4b93f9ed9887bcdf74f824aced9c6e9e3e3abf33c"
	// printf '5500000000000004' | sha256sum
	const shaCard = "dd1ed74bd626c6fa86bdffd25029a46c9d585e0429cc9f00a8c94e90f837d993"
	t.Setenv("SLUICE_TEST_SALT", "pepper")
	tests := []struct {
		name, step, in, want string
	}{
		{"missing fields left alone", "fields: [a.b, c]", `{"a": {"x": 1}, "d": 2}`, `{"a": {"x": 1}, "d": 2}`},
		{"null left alone", "fields: [a]", `{"a": null}`, `{"a": null}`},
		{"intermediate not an object", "fields: [a.b]", `{"a": "text"}`, `{"a": "text"}`},
		{"non-object value passes", "fields: [a]", `"a string"`, `"a string"`},
		{"redact any type", "fields: [n, b, o]", `{"n": 1, "b": false, "o": {"x": 1}}`, `{"n": "****", "b": "****", "o": "****"}`},
		{"array field masks elements", "fields: [phones]", `{"phones": ["1", null, "2"]}`, `{"phones": ["****", null, "****"]}`},
		{"path through nested arrays", "fields: [a.b.c]", `{"a": [{"b": [{"c": 1}, {"d": 2}]}, 3]}`, `{"a": [{"b": [{"c": "****"}, {"d": 2}]}, 3]}`},
		{"hash number as JSON text", "{fields: [n], with: hash}", `{"n": 5500000000000004}`, `{"n": "` + shaCard + `"}`},
		{"hash string and number agree", "{fields: [n, s], with: hash}", `{"n": 5500000000000004, "s": "5500000000000004"}`, `{"n": "` + shaCard + `", "s": "` + shaCard + `"}`},
		{"hmac with salt", "{fields: [s], with: hash, salt_env: SLUICE_TEST_SALT}", `{"s": "x"}`, `{"s": "` + hmacX + `"}`},
		{"last4 short value masked whole", "{fields: [a, b], with: last4}", `{"a": "1234", "b": "12345"}`, `{"a": "****", "b": "*2345"}`},
		{"last4 counts characters", "{fields: [a], with: last4}", `{"a": "ÄÖÜßéèà"}`, `{"a": "***ßéèà"}`},
		{"last4 boolean", "{fields: [a], with: last4}", `{"a": false}`, `{"a": "*alse"}`},
		{"last4 float", "{fields: [a], with: last4}", `{"a": 12.75}`, `{"a": "*2.75"}`},
	}
	reg := registry(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op, err := operatortest.Build(reg, "mask", tc.step)
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			res := operatortest.Process(context.Background(), op, operatortest.Values(decode(t, tc.in)))
			if len(res.DLQ) != 0 || len(res.Out) != 1 {
				t.Fatalf("got %d records and DLQ %v", len(res.Out), res.Errs)
			}
			if want := decode(t, tc.want); !record.EqualJSON(res.Out[0].Value, want) {
				got, _ := record.EncodeJSON(res.Out[0].Value)
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	t.Setenv("SLUICE_TEST_EMPTY", "")
	tests := []struct{ step, want string }{
		{"fields: [a, b, a]", `example.yaml:1:16: field "a" is listed twice`},
		{"fields: [a..b]", `example.yaml:1:10: field path "a..b" has an empty part`},
		{"fields: [a.]", `example.yaml:1:10: field path "a." has an empty part`},
		{"fields: [a]\nsalt_env: X", "example.yaml:2:1: salt_env only applies to with: hash (the default is redact)"},
		{"fields: [a]\nwith: last4\nsalt_env: X", "example.yaml:3:1: salt_env only applies to with: hash, and this step has with: last4"},
		{"fields: [a]\nwith: hash\nsalt_env: SLUICE_TEST_UNSET_VARIABLE", "example.yaml:3:11: environment variable SLUICE_TEST_UNSET_VARIABLE is not set or is empty; it must hold the hash salt"},
		{"{fields: [a], with: hash, salt_env: SLUICE_TEST_EMPTY}", "example.yaml:1:37: environment variable SLUICE_TEST_EMPTY is not set or is empty; it must hold the hash salt"},
	}
	reg := registry(t)
	for _, tc := range tests {
		t.Run(tc.step, func(t *testing.T) {
			_, err := operatortest.Build(reg, "mask", tc.step)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got error %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestConstructorWithoutSchema calls the constructor on configs the schema
// would reject: it must report them, never panic.
func TestConstructorWithoutSchema(t *testing.T) {
	tests := []struct{ step, want string }{
		{"[a]", "example.yaml:1:1: mask needs a mapping such as {fields: [card_number]}, got a list"},
		{"{with: hash}", "example.yaml:1:1: mask needs fields: the paths of the fields to mask"},
		{"{fields: a}", "example.yaml:1:10: fields must be a non-empty list of field paths"},
		{"{fields: [[a]]}", "example.yaml:1:11: a field must be a path such as customer.email, got a list"},
		{"{fields: [a], with: scramble}", `example.yaml:1:21: unknown method "scramble": use redact, hash or last4`},
		{"{fields: [a], with: {x: 1}}", "example.yaml:1:21: with must be redact, hash or last4, got a mapping"},
		{"fields: [a]\nfields: [b]", "example.yaml:2:1: fields is given twice"},
		{"{fields: [a], salt: X}", `example.yaml:1:15: unknown option "salt": mask takes fields, with and salt_env`},
		{"{fields: [a], with: hash, salt_env: ''}", "example.yaml:1:37: salt_env must name an environment variable"},
	}
	for _, tc := range tests {
		t.Run(tc.step, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tc.step), &doc); err != nil {
				t.Fatal(err)
			}
			conf := catalog.NewConfig(catalog.NewSource("example.yaml", []byte(tc.step)), doc.Content[0])
			_, err := mask.New(&catalog.Build{}, conf)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got error %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestSaltReadOnce checks that the salt is read at construction only.
func TestSaltReadOnce(t *testing.T) {
	t.Setenv("SLUICE_TEST_SALT", "first")
	op, err := operatortest.Build(registry(t), "mask", "{fields: [s], with: hash, salt_env: SLUICE_TEST_SALT}")
	if err != nil {
		t.Fatal(err)
	}
	run := func() string {
		res := operatortest.Process(context.Background(), op, operatortest.Values(map[string]any{"s": "x"}))
		return res.Out[0].Value.(map[string]any)["s"].(string)
	}
	before := run()
	t.Setenv("SLUICE_TEST_SALT", "second")
	if after := run(); after != before {
		t.Errorf("the salt was read again after construction: %s then %s", before, after)
	}
	if strings.Contains(before, "first") {
		t.Errorf("hash output %q contains the salt", before)
	}
}

func TestConcurrent(t *testing.T) {
	op, err := operatortest.Build(registry(t), "mask", "{fields: [s], with: hash}")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, s := range []string{"a", "bb", "ccc"} {
		res := operatortest.Process(context.Background(), op, operatortest.Values(map[string]any{"s": s}))
		want[s] = res.Out[0].Value.(map[string]any)["s"].(string)
	}
	if want["a"] == want["bb"] || len(want["a"]) != 64 {
		t.Fatalf("bad hashes %v", want)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				for s, h := range want {
					res := operatortest.Process(context.Background(), op, operatortest.Values(map[string]any{"s": s}))
					if got := res.Out[0].Value.(map[string]any)["s"]; got != h {
						t.Errorf("hash of %q: got %v, want %s", s, got, h)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
