module berth.invalid/shell-gostd

go 1.19
