module github.com/gluon-464xlat/gluon-464xlat

go 1.23
