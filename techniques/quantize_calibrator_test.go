package techniques

import "testing"

// TestQuantizeCalibratorResolved: an unset calibrator becomes the
// method's in Validate (RepQ-ViT's search for repq-vit, minmax
// otherwise); one the stage names is kept.
func TestQuantizeCalibratorResolved(t *testing.T) {
	tests := []struct {
		method, set, want string
	}{
		{MethodPTQ, "", CalibMinMax},
		{MethodFQViT, "", CalibMinMax},
		{MethodPTQ4ViT, "", CalibMinMax},
		{MethodRepQViT, "", CalibRepQ},
		{MethodRepQViT, CalibMinMax, CalibMinMax},
		{MethodRepQViT, CalibMSE, CalibMSE},
		{MethodPTQ, CalibRepQ, CalibRepQ},
	}
	for _, tc := range tests {
		c := NewQuantizeConfig()
		c.Method, c.Calibrator = tc.method, tc.set
		if err := c.Validate(); err != nil {
			t.Errorf("%s, calibrator %q: %v", tc.method, tc.set, err)
			continue
		}
		if c.Calibrator != tc.want {
			t.Errorf("%s, calibrator %q: resolved to %q, want %q", tc.method, tc.set, c.Calibrator, tc.want)
		}
	}
	c := NewQuantizeConfig()
	c.Precision = PrecisionBF16
	if err := c.Validate(); err != nil {
		t.Errorf("bf16 with the calibrator unset: %v", err)
	}
}
