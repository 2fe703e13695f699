package cpuinfo

import (
	"bufio"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestModelFrom(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R45 96-Core Processor\n", "AMD EPYC 9R45 96-Core Processor"},
		{"processor : 0\nmodel name :   \nModel : Raspberry Pi 4 Model B\n", "Raspberry Pi 4 Model B"},
		{"flags : fpu vme\n", runtime.GOARCH},
		{"", runtime.GOARCH},
	} {
		if got := modelFrom(bufio.NewScanner(strings.NewReader(c.text))); got != c.want {
			t.Errorf("modelFrom(%q) = %q, want %q", c.text, got, c.want)
		}
	}
	if Model() == "" {
		t.Error("Model() is empty")
	}
}

// TestGHz: the measured clock of an x86-64 core is within what any such core runs at.
func TestGHz(t *testing.T) {
	g := GHz(20 * time.Millisecond)
	if !haveChain {
		if g != 0 {
			t.Fatalf("GHz = %v without a chain for %s, want 0", g, runtime.GOARCH)
		}
		return
	}
	if g < 0.2 || g > 8 {
		t.Fatalf("GHz = %.2f, want a clock between 0.2 and 8 GHz", g)
	}
	t.Logf("%s at %.2f GHz", Model(), g)
}
