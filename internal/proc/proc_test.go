package proc

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
)

func TestAlive(t *testing.T) {
	if !Alive(os.Getpid()) {
		t.Error("this process is not alive")
	}
	if Alive(0) || Alive(-3) {
		t.Error("a non-positive pid is alive")
	}
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("needs a short-lived child process")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	// The child has been reaped, so its pid is free (reuse within the test is unlikely).
	if Alive(cmd.Process.Pid) {
		t.Errorf("exited child %d is alive", cmd.Process.Pid)
	}
}

func TestHostTag(t *testing.T) {
	a, b := HostTag("alpha"), HostTag("beta")
	if len(a) != 8 || a == b || a != HostTag("alpha") {
		t.Errorf("got %q %q", a, b)
	}
	if Hostname() == "" {
		t.Error("empty hostname")
	}
}
