//go:build !mpi

package distributed

// Available reports whether this build can join an MPI world.
const Available = false

// Init returns ErrNoMPI: this build has no MPI (build with -tags mpi).
func Init() (Comm, error) { return nil, ErrNoMPI }
