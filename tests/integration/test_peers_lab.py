"""test_peers_lab.py - runs tests/peers/test_lab.py in the integration suite:
real Postfix, Exim and OpenSMTPD on loopback relay or refuse exactly as their
mode says (the lab that `relayguard probe` is proven against).  These tests do
not involve the relayguard binary; kinds that cannot run here are skipped."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'peers'))
from test_lab import EximLab, LabItself, OpenSMTPDLab, PostfixLab  # noqa: E402,F401
