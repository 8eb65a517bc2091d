module github.com/gluon-464xlat/gluon-464xlat

go 1.25.0

require github.com/gopacket/gopacket v1.7.7 // indirect
