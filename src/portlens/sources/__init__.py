"""Where frames come from: capture files (pcap, pcapng, gzip of either), live sockets, writers.

Every source yields FrameBatch (sources/frames.py). Nothing here decodes beyond the record
framing: link types are passed through per frame for the decoder.
"""
