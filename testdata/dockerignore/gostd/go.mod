module berth.invalid/dockerignore-gostd

go 1.19
