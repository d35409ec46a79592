#!/bin/sh
# A hand-written rule script.
VIP=192.0.2.20
ipvsadm -C
ipvsadm -A -t 192.0.2.20:www -s wrr -p
ipvsadm -a -t 192.0.2.20:www -r 10.0.1.1:http -g -w 3
ipvsadm -a -t 192.0.2.20:www -r 10.0.1.2 -w 2
/sbin/ipvsadm -a -t 192.0.2.20:443 -r 10.0.1.3:443 -g
