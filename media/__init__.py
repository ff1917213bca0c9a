"""The SFU: rooms of live lessons that forward RTP packets without decoding them."""
