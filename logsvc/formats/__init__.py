"""
Pure parsers from wire bytes to L{logsvc.record.Record}: no Twisted imports.

Each parser takes the bytes of one message, the peer address and the receive
time (microseconds) and returns a L{Record} or raises
L{logsvc.record.RecordError}.
"""
