//go:build !mpi

package distributed

// Init returns ErrNoMPI: this build has no MPI (build with -tags mpi).
func Init() (Comm, error) { return nil, ErrNoMPI }
