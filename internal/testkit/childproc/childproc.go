// Package childproc starts the helper processes tests and the demo run
// (enforcers, kube-proxy) so that they die with the process that started
// them, even when it is SIGKILLed: nothing is left holding pins, links or
// network namespaces.
package childproc

import (
	"io"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Process is a started child.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start starts cmd with SIGKILL as its parent-death signal; out, if not
// nil, is closed once the child has exited. The kernel sends the
// parent-death signal when the thread that started the child exits, not
// the process, so the child is started and waited for on a goroutine
// locked to its thread for the child's whole life.
func Start(cmd *exec.Cmd, out io.Closer) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer close(p.exited)
		if out != nil {
			defer out.Close()
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait() //nolint:errcheck // the exit status is in cmd.ProcessState
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Exited is closed once the child has exited and been reaped.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Running reports whether the child has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits for the child to be gone: no shutdown path
// runs.
func (p *Process) Kill() {
	p.cmd.Process.Signal(syscall.SIGKILL) //nolint:errcheck // gone already is fine
	<-p.exited
}

// Stop asks the child to stop (SIGTERM) and kills it if it has not exited
// within grace.
func (p *Process) Stop(grace time.Duration) {
	p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // gone already is fine
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.Kill()
	}
}
