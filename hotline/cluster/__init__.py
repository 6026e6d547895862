"""`hotline cluster`: Kamailio in front of N Asterisk nodes on one machine (loopback addresses).

topology.py  which node gets which address, ports and state folder (pure)
kamailio.py  the SIP edge: its rendered config, its process, its JSON-RPC
control.py   up / down / status / stop-node
"""
