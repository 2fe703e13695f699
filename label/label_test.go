package label

import (
	"slices"
	"testing"
)

func TestTaskString(t *testing.T) {
	for _, tc := range []struct {
		t    Task
		want string
	}{{Classification, "classification"}, {Segmentation, "segmentation"}, {Task(7), "Task(7)"}} {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("Task(%d).String() = %q, want %q", int(tc.t), got, tc.want)
		}
	}
}

func TestVOCClasses(t *testing.T) {
	names := VOCClasses()
	if len(names) != 21 || names[0] != "background" || names[15] != "person" || names[20] != "tvmonitor" {
		t.Errorf("VOCClasses() = %v", names)
	}
	names[0] = "changed"
	if VOCClasses()[0] != "background" {
		t.Error("VOCClasses shares its slice")
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     int
		given []string
		want  []string
	}{
		{"none", 3, nil, []string{"class0", "class1", "class2"}},
		{"zero", 0, nil, []string{}},
		{"negative", -1, nil, []string{}},
		{"given", 2, []string{"cat", "dog"}, []string{"cat", "dog"}},
		{"fewer given", 3, []string{"cat"}, []string{"cat", "class1", "class2"}},
		{"more given", 1, []string{"cat", "dog"}, []string{"cat"}},
		{"21 none", 21, nil, VOCClasses()},
		{"21 empty", 21, []string{}, VOCClasses()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Names(tc.n, tc.given); !slices.Equal(got, tc.want) {
				t.Errorf("Names(%d, %v) = %v, want %v", tc.n, tc.given, got, tc.want)
			}
		})
	}
	if got := Names(21, nil)[20]; got != "tvmonitor" {
		t.Errorf("Names(21, nil)[20] = %q, want tvmonitor", got)
	}
	for _, n := range []int{20, 22} {
		if got := Names(n, nil)[0]; got != "class0" {
			t.Errorf("Names(%d, nil)[0] = %q, want class0 (VOC names only for exactly 21 classes)", n, got)
		}
	}
	given := []string{"a", "b"}
	Names(2, given)[0] = "changed"
	if given[0] != "a" {
		t.Error("Names shares the given slice")
	}
}
